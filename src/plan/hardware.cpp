#include "src/plan/hardware.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "src/core/error.h"

namespace moe::plan {
namespace {

[[noreturn]] void fail(const std::string& source, const std::string& key, const std::string& problem,
                       const std::string& hint) {
  throw ConfigError("hardware key " + key + ": " + problem + " in " + source + "; " + hint);
}

// A bad value: the caller adds the file and key.
struct BadValue {
  std::string problem;
};

double positive(const YAML::Node& n) {
  double v = 0;
  try {
    v = n.as<double>();
  } catch (const YAML::Exception&) {
    throw BadValue{"'" + (n.IsScalar() ? n.Scalar() : std::string("(not a scalar)")) + "' is not a number"};
  }
  if (!(v > 0)) throw BadValue{"must be a number > 0"};
  return v;
}

double non_negative(const YAML::Node& n) {
  try {
    const double v = n.as<double>();
    if (!(v >= 0)) throw BadValue{"must be a number >= 0"};
    return v;
  } catch (const YAML::Exception&) {
    throw BadValue{"'" + (n.IsScalar() ? n.Scalar() : std::string("(not a scalar)")) + "' is not a number"};
  }
}

using Setter = std::function<void(Hardware&, const YAML::Node&)>;

Setter number(double Hardware::*field) {
  return [field](Hardware& h, const YAML::Node& n) { h.*field = positive(n); };
}

Setter link_field(Link Hardware::*link, double Link::*field) {
  return [link, field](Hardware& h, const YAML::Node& n) { (h.*link).*field = positive(n); };
}

// Every key is required except name, matmul_efficiency and stores_attention_scores.
const std::map<std::string, Setter>& setters() {
  static const std::map<std::string, Setter> s = {
      {"name", [](Hardware& h, const YAML::Node& n) { h.name = n.as<std::string>(); }},
      {"devices_per_node", [](Hardware& h, const YAML::Node& n) { h.devices_per_node = int64_t(positive(n)); }},
      {"matmul_flops", number(&Hardware::matmul_flops)},
      {"fp32_matmul_flops", number(&Hardware::fp32_matmul_flops)},
      {"matmul_efficiency", number(&Hardware::matmul_efficiency)},
      {"memory_gib", [](Hardware& h, const YAML::Node& n) { h.memory_bytes = positive(n) * 1073741824.0; }},
      {"memory_bandwidth", number(&Hardware::memory_bandwidth)},
      {"intra_node_bandwidth", link_field(&Hardware::intra_node, &Link::bandwidth)},
      {"intra_node_latency", link_field(&Hardware::intra_node, &Link::latency)},
      {"inter_node_bandwidth", link_field(&Hardware::inter_node, &Link::bandwidth)},
      {"inter_node_latency", link_field(&Hardware::inter_node, &Link::latency)},
      {"stores_attention_scores",
       [](Hardware& h, const YAML::Node& n) { h.stores_attention_scores = n.as<bool>(); }},
      {"attention_flops", number(&Hardware::attention_flops)},
      {"op_overhead", [](Hardware& h, const YAML::Node& n) { h.op_overhead = non_negative(n); }},
      {"sync_overhead", [](Hardware& h, const YAML::Node& n) { h.sync_overhead = non_negative(n); }},
      {"cores", [](Hardware& h, const YAML::Node& n) { h.cores = int64_t(positive(n)); }},
      {"thread_efficiency", number(&Hardware::thread_efficiency)},
      {"background_load", [](Hardware& h, const YAML::Node& n) { h.background_load = non_negative(n); }},
      {"autogroup", [](Hardware& h, const YAML::Node& n) { h.autogroup = n.as<bool>(); }},
  };
  return s;
}

const char* kOptional[] = {"name",        "matmul_efficiency", "stores_attention_scores", "attention_flops",
                           "op_overhead", "sync_overhead",     "cores",                   "thread_efficiency",
                           "background_load", "autogroup"};

}  // namespace

Hardware parse_hardware(const std::string& yaml_text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError("hardware profile " + source + ": YAML syntax error: " + e.what());
  }
  if (!root.IsMap()) throw ConfigError("hardware profile " + source + ": expected a mapping of keys (see docs/planning.md)");
  Hardware h;
  h.source = source;
  std::map<std::string, bool> seen;
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    auto it = setters().find(key);
    if (it == setters().end()) fail(source, key, "unknown key", "see docs/planning.md for the keys of a profile");
    try {
      it->second(h, kv.second);
    } catch (const BadValue& e) {
      fail(source, key, e.problem, "fix the value (docs/planning.md)");
    } catch (const YAML::Exception&) {
      fail(source, key, "invalid value", "see docs/planning.md for its type");
    }
    seen[key] = true;
  }
  for (const auto& [key, set] : setters()) {
    bool optional = false;
    for (const char* o : kOptional) optional = optional || key == o;
    if (!optional && !seen.count(key)) fail(source, key, "is missing", "add it (docs/planning.md lists every key)");
  }
  if (h.matmul_efficiency > 1) fail(source, "matmul_efficiency", "must be <= 1", "write a fraction of the peak");
  if (h.thread_efficiency > 1) fail(source, "thread_efficiency", "must be <= 1", "write a fraction of linear speed-up");
  if (h.name.empty()) h.name = source;
  return h;
}

double core_share(const Hardware& hw, int64_t ranks, int64_t threads) {
  if (hw.cores <= 0) return 1.0;
  const double mine = double(ranks) * double(std::max<int64_t>(threads, 1));
  if (hw.autogroup) {
    // This session is on min(mine, cores) cores and gets 1 / (1 + others) of each.
    return std::min(1.0, std::min(mine, double(hw.cores)) / ((1.0 + hw.background_load) * mine));
  }
  const double busy = mine + hw.background_load;
  // Fair share: each runnable thread gets cores / busy of a core once the cores are oversubscribed.
  return std::min(1.0, double(hw.cores) / busy);
}

double rank_speed(const Hardware& hw, int64_t ranks, int64_t threads) {
  if (hw.cores <= 0) return 1.0;
  const double t = double(std::max<int64_t>(threads, 1));
  const double share = core_share(hw, ranks, threads);
  // A rank's threads meet at every kernel's end: the extra threads help only while they hold a
  // core together, about `share` of the time on a busy machine.
  return (1.0 + (t - 1.0) * hw.thread_efficiency * share) * share;
}

int64_t default_threads(const Hardware& hw, int64_t ranks) {
  if (hw.cores <= 0) return 1;
  return std::max<int64_t>(1, hw.cores / std::max<int64_t>(ranks, 1));
}

Hardware load_hardware(const std::string& file) {
  std::ifstream in(file);
  if (!in) throw ConfigError("hardware profile " + file + ": cannot open it; pass an existing --hardware FILE (configs/hardware/)");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_hardware(ss.str(), file);
}

std::string dump_hardware(const Hardware& h, const std::string& comment) {
  std::ostringstream o;
  std::istringstream lines(comment);
  for (std::string line; std::getline(lines, line);) o << "# " << line << "\n";
  auto num = [](double v) {
    char b[64];
    std::snprintf(b, sizeof(b), "%.6g", v);
    return std::string(b);
  };
  o << "name: " << h.name << "\n"
    << "devices_per_node: " << h.devices_per_node << "\n"
    << "matmul_flops: " << num(h.matmul_flops) << "\n"
    << "fp32_matmul_flops: " << num(h.fp32_matmul_flops) << "\n"
    << "matmul_efficiency: " << num(h.matmul_efficiency) << "\n"
    << "memory_gib: " << num(h.memory_bytes / 1073741824.0) << "\n"
    << "memory_bandwidth: " << num(h.memory_bandwidth) << "\n"
    << "intra_node_bandwidth: " << num(h.intra_node.bandwidth) << "\n"
    << "intra_node_latency: " << num(h.intra_node.latency) << "\n"
    << "inter_node_bandwidth: " << num(h.inter_node.bandwidth) << "\n"
    << "inter_node_latency: " << num(h.inter_node.latency) << "\n"
    << "stores_attention_scores: " << (h.stores_attention_scores ? "true" : "false") << "\n";
  if (h.attention_flops > 0) o << "attention_flops: " << num(h.attention_flops) << "\n";
  if (h.op_overhead > 0) o << "op_overhead: " << num(h.op_overhead) << "\n";
  if (h.sync_overhead > 0) o << "sync_overhead: " << num(h.sync_overhead) << "\n";
  if (h.cores > 0)
    o << "cores: " << h.cores << "\n"
      << "thread_efficiency: " << num(h.thread_efficiency) << "\n"
      << "background_load: " << num(h.background_load) << "\n"
      << "autogroup: " << (h.autogroup ? "true" : "false") << "\n";
  return o.str();
}

}  // namespace moe::plan
