// train.device: cpu | cuda | auto. The choice is made once per run, collectively (every rank takes
// the same path, or the ranks would wait on each other's collectives forever).
#pragma once
#include <memory>
#include <string>

#include "src/comm/communicator.h"
#include "src/train/config.h"
#include "src/train/generate.h"

namespace moe {

// Whether this build has the CUDA backend compiled in.
bool cuda_built();
// CUDA devices visible to this process (0 without the backend or a driver).
int cuda_devices();

// "cpu" or "cuda". cuda: ConfigError (exit 2) when any rank has no GPU, the build has no CUDA
// backend, or the layout/feature set is not run on the device (naming the key); auto: cuda when
// all of that holds on every rank, else cpu. Collective over `world`.
std::string resolve_device(const Config& c, comm::Communicator& world);

// The decoder of `moe generate --device cpu|cuda|auto` over a model's weights (p: views into
// `params`, which must outlive the decoder): cuda exits 2 (ConfigError naming --device) without a
// GPU or for a config the GPU decoder does not run; auto falls back to the CPU then.
std::unique_ptr<TokenDecoder> make_token_decoder(const Config& c, const ModelParams& p, const float* params,
                                                 int64_t capacity, const std::string& device);

}  // namespace moe
