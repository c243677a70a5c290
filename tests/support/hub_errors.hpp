// A Hub error handler for tests that check what reached the Hub (often:
// nothing). Records the text of each error in `into`, which must outlive the
// Hub's use of the handler.
//
// Thread rules: runs on the Hub's thread, like any error handler.
#pragma once

#include <exception>
#include <functional>
#include <string>
#include <vector>

namespace kelp_test {

inline std::function<void(std::exception_ptr)> record_errors(std::vector<std::string>& into) {
    return [&into](std::exception_ptr error) {
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& e) {
            into.push_back(e.what());
        } catch (...) {
            into.push_back("an exception that is not a std::exception");
        }
    };
}

}  // namespace kelp_test
