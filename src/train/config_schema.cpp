// The table of config keys: types, ranges and enums (documented in docs/config.md).
#include "src/train/config_schema.h"

#include <charconv>
#include <cmath>
#include <limits>

#include "src/core/error.h"

namespace moe::config_detail {
namespace {

constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();
constexpr double kInf = std::numeric_limits<double>::infinity();

std::string node_kind(const YAML::Node& n) {
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  if (n.IsNull()) return "no value";
  return "\"" + n.Scalar() + "\"";
}

// The scalar text of `n`, or a ConfigError saying what was expected instead.
std::string scalar_of(const YAML::Node& n, const std::string& path, const std::string& expected,
                      const Origin& where, bool null_is_empty = false) {
  if (null_is_empty && n.IsNull()) return "";
  if (!n.IsScalar()) fail(path, "got " + node_kind(n), where, "expected " + expected);
  return n.Scalar();
}

// from_chars does not take a leading '+', which YAML allows.
std::string_view strip_plus(const std::string& s) {
  std::string_view v(s);
  if (!v.empty() && v.front() == '+') v.remove_prefix(1);
  return v;
}

template <class T>
bool parse_number(const std::string& text, T& out) {
  std::string_view v = strip_plus(text);
  if (v.empty()) return false;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  return ec == std::errc() && end == v.data() + v.size();
}

std::string int_expected(int64_t lo, int64_t hi) {
  if (hi == kMaxInt) return "an integer >= " + std::to_string(lo);
  return "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
}

// Range of a real-valued key: lo < x (or lo <= x) and x < hi (or x <= hi).
struct RealRange {
  double lo = 0;
  bool lo_open = false;
  double hi = kInf;
  bool hi_open = true;
  bool contains(double x) const {
    return std::isfinite(x) && (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi);
  }
  std::string expected() const {
    auto num = [](double v) { return format_real(v); };
    if (hi == kInf) return std::string("a number ") + (lo_open ? "> " : ">= ") + num(lo);
    return std::string("a number in ") + (lo_open ? "(" : "[") + num(lo) + ", " + num(hi) + (hi_open ? ")" : "]");
  }
};

template <class S>
KeySpec int_key(const char* sec, const char* key, S Config::*s, int64_t S::*f, int64_t lo,
                int64_t hi = kMaxInt) {
  KeySpec k{sec, key, nullptr, nullptr};
  std::string path = k.path();
  k.set = [=](Config& c, const YAML::Node& n, const Origin& where) {
    std::string expected = int_expected(lo, hi);
    std::string text = scalar_of(n, path, expected, where);
    int64_t v = 0;
    if (!parse_number(text, v)) fail(path, "\"" + text + "\" is not an integer", where, "expected " + expected);
    if (v < lo || v > hi) fail(path, text + " is out of range", where, "expected " + expected);
    c.*s.*f = v;
  };
  k.get = [=](const Config& c) { return std::to_string(c.*s.*f); };
  return k;
}

template <class S>
KeySpec uint_key(const char* sec, const char* key, S Config::*s, uint64_t S::*f) {
  KeySpec k{sec, key, nullptr, nullptr};
  std::string path = k.path();
  k.set = [=](Config& c, const YAML::Node& n, const Origin& where) {
    const std::string expected = "an integer in [0, 2^64)";
    std::string text = scalar_of(n, path, expected, where);
    uint64_t v = 0;
    if (!parse_number(text, v)) fail(path, "\"" + text + "\" is not an unsigned integer", where, "expected " + expected);
    c.*s.*f = v;
  };
  k.get = [=](const Config& c) { return std::to_string(c.*s.*f); };
  return k;
}

template <class S>
KeySpec real_key(const char* sec, const char* key, S Config::*s, double S::*f, RealRange r) {
  KeySpec k{sec, key, nullptr, nullptr};
  std::string path = k.path();
  k.set = [=](Config& c, const YAML::Node& n, const Origin& where) {
    std::string text = scalar_of(n, path, r.expected(), where);
    double v = 0;
    if (!parse_number(text, v)) fail(path, "\"" + text + "\" is not a number", where, "expected " + r.expected());
    if (!r.contains(v)) fail(path, text + " is out of range", where, "expected " + r.expected());
    c.*s.*f = v;
  };
  k.get = [=](const Config& c) { return format_real(c.*s.*f); };
  return k;
}

template <class S>
KeySpec bool_key(const char* sec, const char* key, S Config::*s, bool S::*f) {
  KeySpec k{sec, key, nullptr, nullptr};
  std::string path = k.path();
  k.set = [=](Config& c, const YAML::Node& n, const Origin& where) {
    const std::string expected = "true or false";
    std::string text = scalar_of(n, path, expected, where);
    bool v = false;
    if (!YAML::convert<bool>::decode(n, v)) fail(path, "\"" + text + "\" is not a boolean", where, "expected " + expected);
    c.*s.*f = v;
  };
  k.get = [=](const Config& c) { return std::string(c.*s.*f ? "true" : "false"); };
  return k;
}

// A string key; `choices` non-empty makes it an enum. A null value reads as "".
template <class S>
KeySpec string_key(const char* sec, const char* key, S Config::*s, std::string S::*f,
                   std::vector<std::string> choices, bool allow_empty) {
  KeySpec k{sec, key, nullptr, nullptr};
  std::string path = k.path();
  k.set = [=](Config& c, const YAML::Node& n, const Origin& where) {
    std::string expected = "a string";
    if (!choices.empty()) {
      expected = "one of";
      for (const auto& ch : choices) expected += " " + ch;
    }
    std::string text = scalar_of(n, path, expected, where, /*null_is_empty=*/true);
    if (!choices.empty()) {
      bool known = false;
      for (const auto& ch : choices) known = known || ch == text;
      if (!known) fail(path, "\"" + text + "\" is not a valid choice", where, "expected " + expected);
    } else if (!allow_empty && text.empty()) {
      fail(path, "is empty", where, "expected a non-empty string");
    }
    c.*s.*f = text;
  };
  k.get = [=](const Config& c) {
    YAML::Emitter e;  // quotes what YAML would otherwise read differently ("", "~", "a: b")
    e << c.*s.*f;
    return std::string(e.c_str());
  };
  return k;
}

// A list of names from `choices` (a YAML sequence, or one name); written back as a flow sequence.
template <class S>
KeySpec name_list_key(const char* sec, const char* key, S Config::*s, std::vector<std::string> S::*f,
                      std::vector<std::string> choices) {
  KeySpec k{sec, key, nullptr, nullptr};
  std::string path = k.path();
  k.set = [=](Config& c, const YAML::Node& n, const Origin& where) {
    std::string expected = "a list of names from:";
    for (const auto& ch : choices) expected += " " + ch;
    std::vector<YAML::Node> items;
    if (n.IsSequence()) {
      for (const auto& item : n) items.push_back(item);
    } else if (!n.IsNull()) {
      items.push_back(n);
    }
    std::vector<std::string> out;
    for (const auto& item : items) {
      std::string text = scalar_of(item, path, expected, where);
      bool known = false;
      for (const auto& ch : choices) known = known || ch == text;
      if (!known) fail(path, "\"" + text + "\" is not a valid choice", where, "expected " + expected);
      for (const auto& seen : out)
        if (seen == text) fail(path, "\"" + text + "\" is listed twice", where, "list each name once");
      out.push_back(text);
    }
    c.*s.*f = out;
  };
  k.get = [=](const Config& c) {
    std::string t = "[";
    for (const auto& v : c.*s.*f) t += (t.size() > 1 ? ", " : "") + v;
    return t + "]";
  };
  return k;
}

// A list of integers >= lo (a YAML sequence; null or [] = empty); written back as a flow sequence.
template <class S>
KeySpec int_list_key(const char* sec, const char* key, S Config::*s, std::vector<int64_t> S::*f, int64_t lo) {
  KeySpec k{sec, key, nullptr, nullptr};
  std::string path = k.path();
  k.set = [=](Config& c, const YAML::Node& n, const Origin& where) {
    const std::string expected = "a list of integers >= " + std::to_string(lo) + " (e.g. [1, 3])";
    if (!n.IsNull() && !n.IsSequence()) fail(path, "got " + node_kind(n), where, "expected " + expected);
    std::vector<int64_t> out;
    for (const auto& item : n) {
      const std::string text = scalar_of(item, path, expected, where);
      int64_t v = 0;
      if (!parse_number(text, v)) fail(path, "\"" + text + "\" is not an integer", where, "expected " + expected);
      if (v < lo) fail(path, text + " is out of range", where, "expected " + expected);
      out.push_back(v);
    }
    c.*s.*f = out;
  };
  k.get = [=](const Config& c) {
    std::string t = "[";
    for (int64_t v : c.*s.*f) t += (t.size() > 1 ? ", " : "") + std::to_string(v);
    return t + "]";
  };
  return k;
}

// profile.trace_steps: "A-B" (completed steps A..B) or "N" (one step), 1 <= A <= B.
KeySpec trace_steps_key() {
  KeySpec k{"profile", "trace_steps", nullptr, nullptr};
  const std::string path = k.path();
  k.set = [=](Config& c, const YAML::Node& n, const Origin& where) {
    const std::string expected = "a step range \"A-B\" or one step \"N\" (1 <= A <= B)";
    const std::string text = scalar_of(n, path, expected, where);
    const size_t dash = text.find('-');
    int64_t a = 0, b = 0;
    const bool ok = dash == std::string::npos
                        ? parse_number(text, a) && (b = a, true)
                        : parse_number(text.substr(0, dash), a) && parse_number(text.substr(dash + 1), b);
    if (!ok || a < 1 || b < a) fail(path, "\"" + text + "\" is not a step range", where, "expected " + expected);
    c.profile.trace_first = a;
    c.profile.trace_last = b;
  };
  k.get = [](const Config& c) {
    return "\"" + std::to_string(c.profile.trace_first) + "-" + std::to_string(c.profile.trace_last) + "\"";
  };
  return k;
}

std::vector<KeySpec> build_schema() {
  using C = Config;
  using M = ModelConfig;
  using E = MoeConfig;
  using P = ParallelConfig;
  using T = TrainConfig;
  using O = OptimConfig;
  const RealRange positive{0, true};
  const RealRange non_negative{0, false};
  const RealRange unit_open{0, false, 1, true};  // [0, 1)
  const RealRange padding{0, false, 8, false};   // [0, 8]: buffers of up to 8 x the routed rows
  return {
      int_key("model", "vocab_size", &C::model, &M::vocab_size, 1),
      int_key("model", "d_model", &C::model, &M::d_model, 1),
      int_key("model", "n_layers", &C::model, &M::n_layers, 1),
      int_key("model", "n_heads", &C::model, &M::n_heads, 1),
      int_key("model", "n_kv_heads", &C::model, &M::n_kv_heads, 1),
      int_key("model", "seq_len", &C::model, &M::seq_len, 1),
      int_key("model", "ffn_hidden", &C::model, &M::ffn_hidden, 1),
      real_key("model", "norm_eps", &C::model, &M::norm_eps, positive),
      real_key("model", "rope_theta", &C::model, &M::rope_theta, positive),
      int_key("model", "moe_every", &C::model, &M::moe_every, 0),
      int_key("model", "first_dense_layers", &C::model, &M::first_dense_layers, 0),

      int_key("moe", "num_experts", &C::moe, &E::num_experts, 1),
      int_key("moe", "top_k", &C::moe, &E::top_k, 1),
      int_key("moe", "expert_hidden", &C::moe, &E::expert_hidden, 1),
      int_key("moe", "num_shared_experts", &C::moe, &E::num_shared_experts, 0),
      real_key("moe", "capacity_factor", &C::moe, &E::capacity_factor, non_negative),
      string_key("moe", "drop_policy", &C::moe, &E::drop_policy, {"probs", "position"}, false),
      bool_key("moe", "norm_topk_prob", &C::moe, &E::norm_topk_prob),
      real_key("moe", "aux_loss_coeff", &C::moe, &E::aux_loss_coeff, non_negative),
      real_key("moe", "z_loss_coeff", &C::moe, &E::z_loss_coeff, non_negative),
      real_key("moe", "bias_update_rate", &C::moe, &E::bias_update_rate, non_negative),
      string_key("moe", "router", &C::moe, &E::router, {"softmax", "sigmoid", "expert_choice"}, false),
      string_key("moe", "score_order", &C::moe, &E::score_order, {"softmax_then_topk", "topk_then_softmax"}, false),
      real_key("moe", "router_scale", &C::moe, &E::router_scale, positive),
      real_key("moe", "router_jitter", &C::moe, &E::router_jitter, unit_open),
      int_key("moe", "num_groups", &C::moe, &E::num_groups, 1),
      int_key("moe", "topk_groups", &C::moe, &E::topk_groups, 1),
      string_key("moe", "aux_loss_type", &C::moe, &E::aux_loss_type, {"switch", "seq", "none"}, false),

      int_key("parallel", "dp", &C::parallel, &P::dp, 1),
      int_key("parallel", "tp", &C::parallel, &P::tp, 1),
      int_key("parallel", "pp", &C::parallel, &P::pp, 1),
      int_key("parallel", "ep", &C::parallel, &P::ep, 1),
      int_key("parallel", "etp", &C::parallel, &P::etp, 1),
      int_key("parallel", "zero_stage", &C::parallel, &P::zero_stage, 0, 3),
      int_key("parallel", "microbatches", &C::parallel, &P::microbatches, 1),
      string_key("parallel", "schedule", &C::parallel, &P::schedule, {"gpipe", "1f1b"}, false),
      int_list_key("parallel", "pp_layout", &C::parallel, &P::pp_layout, 1),
      int_key("parallel", "virtual_stages", &C::parallel, &P::virtual_stages, 1),
      string_key("parallel", "recompute", &C::parallel, &P::recompute, {"none", "block", "attention", "moe"}, false),
      real_key("parallel", "timeout_s", &C::parallel, &P::timeout_s, positive),

      int_key("train", "steps", &C::train, &T::steps, 1),
      int_key("train", "batch_size", &C::train, &T::batch_size, 1),
      uint_key("train", "seed", &C::train, &T::seed),
      string_key("train", "precision", &C::train, &T::precision, {"fp32", "bf16", "fp16"}, false),
      real_key("train", "loss_scale_init", &C::train, &T::loss_scale_init, positive),
      int_key("train", "loss_scale_window", &C::train, &T::loss_scale_window, 1),
      string_key("train", "device", &C::train, &T::device, {"cpu", "cuda", "auto"}, false),
      real_key("train", "gpu_expert_padding", &C::train, &T::gpu_expert_padding, padding),
      int_key("train", "log_every", &C::train, &T::log_every, 1),
      int_key("train", "eval_every", &C::train, &T::eval_every, 0),
      int_key("train", "eval_batches", &C::train, &T::eval_batches, 1),

      real_key("optim", "lr", &C::optim, &O::lr, positive),
      real_key("optim", "min_lr", &C::optim, &O::min_lr, non_negative),
      int_key("optim", "warmup_steps", &C::optim, &O::warmup_steps, 0),
      real_key("optim", "weight_decay", &C::optim, &O::weight_decay, non_negative),
      real_key("optim", "beta1", &C::optim, &O::beta1, unit_open),
      real_key("optim", "beta2", &C::optim, &O::beta2, unit_open),
      real_key("optim", "eps", &C::optim, &O::eps, positive),
      real_key("optim", "grad_clip", &C::optim, &O::grad_clip, non_negative),

      string_key("data", "path", &C::data, &DataConfig::path, {}, false),
      int_key("data", "prefetch", &C::data, &DataConfig::prefetch, 1),

      string_key("checkpoint", "dir", &C::checkpoint, &CheckpointConfig::dir, {}, true),
      int_key("checkpoint", "every", &C::checkpoint, &CheckpointConfig::every, 0),
      int_key("checkpoint", "keep", &C::checkpoint, &CheckpointConfig::keep, 1),
      // auto | never | a checkpoint path: any non-empty string.
      string_key("checkpoint", "resume", &C::checkpoint, &CheckpointConfig::resume, {}, false),

      bool_key("profile", "load_balance", &C::profile, &ProfileConfig::load_balance),
      int_key("profile", "every", &C::profile, &ProfileConfig::every, 1),
      string_key("profile", "trace", &C::profile, &ProfileConfig::trace, {}, true),
      trace_steps_key(),

      name_list_key("finetune", "freeze", &C::finetune, &FinetuneConfig::freeze,
                    {"embeddings", "attention", "router", "shared_experts", "experts", "dense_ffn", "norms", "output",
                     "all_but_experts"}),
  };
}

}  // namespace

std::string format_real(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);  // shortest text that reads back exactly
  MOE_CHECK(ec == std::errc(), "to_chars failed");
  std::string s(buf, end);
  // YAML 1.1 readers (PyYAML) need a '.' to see a float: 300 -> 300.0, 1e-05 -> 1.0e-05.
  if (s.find_first_of(".ni") == std::string::npos) {
    size_t e = s.find('e');
    s.insert(e == std::string::npos ? s.size() : e, ".0");
  }
  return s;
}

const std::vector<KeySpec>& config_schema() {
  static const std::vector<KeySpec> schema = build_schema();
  return schema;
}

const std::vector<std::string>& config_sections() {
  static const std::vector<std::string> sections = [] {
    std::vector<std::string> out;
    for (const auto& k : config_schema())
      if (out.empty() || out.back() != k.section) out.push_back(k.section);
    return out;
  }();
  return sections;
}

const KeySpec* find_key(const std::string& section, const std::string& key) {
  for (const auto& k : config_schema())
    if (k.section == section && k.key == key) return &k;
  return nullptr;
}

}  // namespace moe::config_detail
