// The doctest runner of the kafka:// transport tests. Started with
// --kafka-child it is instead the consumer that kafka_test.cpp kills.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstring>

int kafka_child_main(int argc, char** argv);

int main(int argc, char** argv) {
    if (argc > 1 && std::strcmp(argv[1], "--kafka-child") == 0) return kafka_child_main(argc, argv);
    doctest::Context context(argc, argv);
    return context.run();
}
