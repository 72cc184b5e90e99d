// Config error messages: where a value came from, and did-you-mean suggestions for unknown names.
#include <algorithm>

#include "src/core/error.h"
#include "src/train/config_schema.h"

namespace moe::config_detail {

std::string Origin::describe() const {
  if (override.empty()) return source;
  return "--set " + override + " (config " + source + ")";
}

void fail(const std::string& key, const std::string& problem, const Origin& where, const std::string& hint) {
  throw ConfigError(key + ": " + problem + " in " + where.describe() + "; " + hint);
}

size_t edit_distance(const std::string& a, const std::string& b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[n][m];
}

namespace {

// Keeps the closest candidate; the first one wins ties, so callers list the likeliest first.
struct Best {
  std::string name;
  size_t distance = SIZE_MAX;
  void offer(const std::string& candidate, size_t d) {
    if (d < distance) name = candidate, distance = d;
  }
  // Close enough to be a typo of `typed`, not just another short word.
  bool close_to(const std::string& typed) const {
    return distance <= std::max<size_t>(2, typed.size() / 3);
  }
};

std::string join_keys_of(const std::string& section) {
  std::string out;
  for (const auto& k : config_schema())
    if (k.section == section) out += (out.empty() ? "" : ", ") + k.key;
  return out;
}

std::string join_sections() {
  std::string out;
  for (const auto& s : config_sections()) out += (out.empty() ? "" : ", ") + s;
  return out;
}

bool is_section(const std::string& s) {
  const auto& all = config_sections();
  return std::find(all.begin(), all.end(), s) != all.end();
}

}  // namespace

void fail_unknown(const std::string& section, const std::string& key, const Origin& where) {
  Best best;
  std::string typed, what, fallback;
  if (is_section(section)) {
    // A misspelt key, or a key of another section (model.top_k -> moe.top_k).
    typed = key;
    what = section + "." + key + ": unknown key";
    fallback = "keys of " + section + ": " + join_keys_of(section);
    for (const auto& k : config_schema())
      if (k.section == section) best.offer(k.path(), edit_distance(key, k.key));
    for (const auto& k : config_schema())
      if (k.section != section) best.offer(k.path(), edit_distance(key, k.key) + 1);
  } else if (key.empty()) {
    // A misspelt section, or a key written at the top level (d_model: 64 -> model.d_model).
    typed = section;
    what = section + ": unknown section";
    fallback = "sections: " + join_sections();
    for (const auto& s : config_sections()) best.offer(s, edit_distance(section, s));
    for (const auto& k : config_schema()) best.offer(k.path(), edit_distance(section, k.key) + 1);
  } else {
    // --set with a misspelt section: compare whole paths, or section and key separately.
    typed = section + "." + key;
    what = typed + ": unknown section " + section;
    fallback = "sections: " + join_sections();
    for (const auto& k : config_schema()) {
      size_t split = edit_distance(section, k.section) + edit_distance(key, k.key);
      best.offer(k.path(), std::min(edit_distance(typed, k.path()), split));
    }
  }
  std::string hint = best.close_to(typed) ? "did you mean " + best.name + "?" : fallback;
  throw ConfigError(what + " in " + where.describe() + "; " + hint);
}

}  // namespace moe::config_detail
