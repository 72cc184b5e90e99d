// Loading the YAML config: sections and keys from the file, then --set overrides, then the
// cross-key checks. Key types and ranges live in config_schema.cpp; docs/config.md lists them.
#include "src/train/config.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <iterator>

#include "src/core/error.h"
#include "src/train/config_schema.h"

namespace moe {
namespace {

using config_detail::Origin;

bool is_section(const std::string& name) {
  for (const auto& s : config_detail::config_sections())
    if (s == name) return true;
  return false;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// A mapping key as text; YAML allows lists or maps as keys, a config does not.
std::string key_text(const YAML::Node& k, const std::string& parent, const Origin& where) {
  if (!k.IsScalar()) {
    std::string at = parent.empty() ? "top level" : parent;
    throw ConfigError(at + ": a key that is not a plain name in " + where.describe() +
                      "; write keys as plain names, e.g. model: {d_model: 64}");
  }
  return k.Scalar();
}

void apply_section(Config& c, const std::string& section, const YAML::Node& body, const Origin& where) {
  if (body.IsNull()) return;  // "profile:" with nothing under it keeps the defaults
  if (!body.IsMap()) {
    config_detail::fail(section, "got " + std::string(body.IsSequence() ? "a list" : "a single value"), where,
                        "expected a mapping of keys, e.g. " + section + ": {key: value}");
  }
  std::set<std::string> seen;
  for (const auto& kv : body) {
    std::string key = key_text(kv.first, section, where);
    const config_detail::KeySpec* spec = config_detail::find_key(section, key);
    if (!spec) config_detail::fail_unknown(section, key, where);
    if (!seen.insert(key).second)
      config_detail::fail(spec->path(), "is given twice", where, "keep one of the two");
    spec->set(c, kv.second, where);
  }
}

void apply_file(Config& c, const std::string& text, const Origin& where) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(where.source + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
                      ": YAML syntax error: " + e.msg + "; fix the file (docs/config.md shows the layout)");
  }
  if (root.IsNull()) return;  // an empty file: all defaults
  if (!root.IsMap()) {
    throw ConfigError(where.source + ": the top level is not a mapping of sections; expected sections such as "
                      "model:, moe:, train: (docs/config.md)");
  }
  std::set<std::string> seen;
  for (const auto& kv : root) {
    std::string section = key_text(kv.first, "", where);
    if (!is_section(section)) config_detail::fail_unknown(section, "", where);
    if (!seen.insert(section).second)
      config_detail::fail(section, "section is given twice", where, "merge the two into one");
    apply_section(c, section, kv.second, where);
  }
}

// "section.key=value": the value is read as a YAML scalar, then set like a value from the file.
void apply_override(Config& c, const std::string& text, const std::string& source) {
  Origin where{source, text};
  const std::string usage = "expected section.key=value, e.g. --set train.steps=100";
  size_t eq = text.find('=');
  std::string path = trim(text.substr(0, eq));
  if (eq == std::string::npos || path.empty()) {
    throw ConfigError("--set " + text + ": malformed override (config " + source + "); " + usage);
  }
  size_t dot = path.find('.');
  if (dot == std::string::npos) {
    if (is_section(path)) {
      throw ConfigError("--set " + text + ": " + path + " is a section, not a key (config " + source + "); " + usage);
    }
    config_detail::fail_unknown(path, "", where);
  }
  std::string section = path.substr(0, dot), key = path.substr(dot + 1);
  if (section.empty() || key.empty()) {
    throw ConfigError("--set " + text + ": malformed key " + path + " (config " + source + "); " + usage);
  }
  const config_detail::KeySpec* spec = config_detail::find_key(section, key);
  if (!spec) config_detail::fail_unknown(section, key, where);
  std::string value = text.substr(eq + 1);
  YAML::Node node;
  try {
    node = YAML::Load(value);
  } catch (const YAML::ParserException& e) {
    config_detail::fail(path, "value \"" + value + "\" is not valid YAML (" + e.msg + ")", where,
                        "quote it or give a plain value");
  }
  spec->set(c, node, where);
}

}  // namespace

Config parse_config(const std::string& yaml_text, const std::string& source,
                    const std::vector<std::string>& overrides) {
  Config c;
  c.source = source;
  apply_file(c, yaml_text, Origin{source, ""});
  for (const auto& o : overrides) apply_override(c, o, source);
  std::string checked = overrides.empty() ? source : source + " with its --set overrides";
  config_detail::check_consistency(c, Origin{checked, ""});
  return c;
}

Config load_config(const std::string& file, const std::vector<std::string>& overrides) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec))
    throw ConfigError(file + ": no such config file; check the path (e.g. configs/tiny.yaml)");
  if (!std::filesystem::is_regular_file(file, ec))
    throw ConfigError(file + ": is not a regular file; give the path of a YAML config file");
  std::ifstream in(file, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in && !in.eof()) throw ConfigError(file + ": cannot read the config file; check its permissions");
  return parse_config(text, file, overrides);
}

std::string dump_config(const Config& c) {
  std::string out;
  std::string section;
  for (const auto& k : config_detail::config_schema()) {
    if (k.section != section) {
      section = k.section;
      out += section + ":\n";
    }
    out += "  " + k.key + ": " + k.get(c) + "\n";
  }
  return out;
}

}  // namespace moe
