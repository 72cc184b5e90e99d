// Text generation on CPU: an incremental forward over a KV cache (each new token attends over the
// cached keys and values; RoPE at its absolute position), and temperature / top-p sampling driven
// by a counter-based RNG, so a seed gives the same text on every machine. docs/finetune.md.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "moe/moe_layer.h"
#include "src/model/dims.h"
#include "src/model/kv_cache.h"
#include "src/model/mlp.h"
#include "src/model/params.h"
#include "src/train/config.h"

namespace moe {

// ConfigError when the config cannot be decoded token by token (expert-choice routing picks
// tokens across a batch, so a token's output would depend on later tokens).
void check_generation_config(const Config& c);

// What generate() samples from: one token in, the next token's logits out.
class TokenDecoder {
 public:
  virtual ~TokenDecoder() = default;
  // Appends `token` at the next position and returns the logits (V) of the token after it.
  virtual const std::vector<float>& feed(int32_t token) = 0;
};

// The CPU decoder.
class Decoder final : public TokenDecoder {
 public:
  // Up to `capacity` positions. Routing is dropless (moe.capacity_factor is a training setting).
  Decoder(const Config& c, const ModelParams& p, int64_t capacity);
  // Appends `token` at position position() and returns the logits (V) of the next token.
  const std::vector<float>& feed(int32_t token) override;
  int64_t position() const { return cache_.size(); }

 private:
  Config c_;
  Dims d_;  // one token: B = T = N = 1
  const ModelParams& p_;
  KvCache cache_;
  std::vector<float> x_, xn_, rstd_, q_, y_, logits_, scores_;
  std::vector<MoeLayerState> moe_;
  std::vector<std::unique_ptr<TokenDispatcher>> dispatchers_;
  SwigluActs dense_;
};

struct SamplingOptions {
  double temperature = 1.0;  // 0 = greedy (argmax, ties to the lower id)
  double top_p = 1.0;        // nucleus: sample among the most probable ids whose mass reaches top_p
  uint64_t seed = 0;
};

// The id drawn for generated token number `index` (0, 1, ...): uniform draw `index` of the
// stream of (seed, "generate").
int32_t sample_token(const std::vector<float>& logits, const SamplingOptions& o, int64_t index);

// Feeds `prompt` (non-empty) then samples up to max_new ids, stopping after `stop_id` (not
// returned). Returns the generated ids.
std::vector<int32_t> generate(const Config& c, const ModelParams& p, const std::vector<int32_t>& prompt,
                              int64_t max_new, const SamplingOptions& o, int32_t stop_id);
// The same with any decoder (src/cuda/device_decoder.h decodes on a GPU); it must hold at least
// prompt.size() + max_new positions.
std::vector<int32_t> generate(TokenDecoder& dec, const std::vector<int32_t>& prompt, int64_t max_new,
                              const SamplingOptions& o, int32_t stop_id);

}  // namespace moe
