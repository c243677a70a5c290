// kelp: the command-line tool (see docs/cli.md). Everything but the entry
// point lives in the kelp_cli library, which the tests link too.
#include <string>
#include <vector>

#include "common.hpp"

int main(int argc, char** argv) {
    return kelp::cli::run(std::vector<std::string>(argv + 1, argv + argc));
}
