// Internal to the config loader (src/train/config*.cpp): the table of every config key, how it
// is read from a YAML scalar and written back, and the error helpers that name key and file.
#pragma once
#include <yaml-cpp/yaml.h>

#include <functional>
#include <string>
#include <vector>

#include "src/train/config.h"

namespace moe::config_detail {

// Where a value came from, for messages: the config file, and the --set text if any.
struct Origin {
  std::string source;    // config file (or the name given to parse_config)
  std::string override;  // "--set a.b=c" text; empty for values read from the file
  std::string describe() const;
};

// One config key: "section.key", a setter that parses and range-checks a YAML node, and a
// getter that renders the value as YAML scalar text (exact round trip).
struct KeySpec {
  std::string section;
  std::string key;
  std::function<void(Config&, const YAML::Node&, const Origin&)> set;
  std::function<std::string(const Config&)> get;
  std::string path() const { return section + "." + key; }
};

// All keys, grouped by section in the order of the sections and of config.h.
const std::vector<KeySpec>& config_schema();
// The section names, in order.
const std::vector<std::string>& config_sections();
// The spec for section.key, or nullptr.
const KeySpec* find_key(const std::string& section, const std::string& key);

// Throws ConfigError "KEY: PROBLEM in WHERE; HINT".
[[noreturn]] void fail(const std::string& key, const std::string& problem, const Origin& where,
                       const std::string& hint);

// Unknown-name errors with a did-you-mean over the known keys of the section and all sections.
// `section` known, `key` not: an unknown key. `key` empty: `section` is an unknown section.
// Both unknown (only from --set): an unknown section.key path.
[[noreturn]] void fail_unknown(const std::string& section, const std::string& key, const Origin& where);

// A double as the shortest YAML text that reads back to the same value (always with a '.').
std::string format_real(double v);

// Optimal-string-alignment edit distance (a swap of neighbours counts as one edit).
size_t edit_distance(const std::string& a, const std::string& b);

// Cross-key checks (divisibility, top_k <= num_experts, ...); ConfigError naming the keys.
void check_consistency(const Config& c, const Origin& where);
// The parallel-layout divisibility checks shared by parsing and validate_layout.
void check_layout_divisibility(const Config& c, const Origin& where);
// Pipeline stages: an even split of model.n_layers over parallel.pp, or parallel.pp_layout.
void check_pipeline_layout(const Config& c, const Origin& where);

}  // namespace moe::config_detail
