// `moe data inspect DIR`: a summary of a prepared dataset, with every shard validated
// (checksums included) and a decoded sample.
#pragma once
#include <ostream>
#include <string>

namespace moe::data {

// Prints to `out`; DataError naming the file on any mismatch.
void inspect_dataset(const std::string& dir, std::ostream& out);

}  // namespace moe::data
