#include "src/train/device_select.h"

#include "src/core/error.h"
#ifdef MOE_WITH_CUDA
#include "kernels/cuda/context.cuh"
#include "src/cuda/device_decoder.h"
#include "src/cuda/device_model.h"
#endif

namespace moe {

bool cuda_built() {
#ifdef MOE_WITH_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_devices() {
#ifdef MOE_WITH_CUDA
  return cuda::device_count();
#else
  return 0;
#endif
}

namespace {

// Why this config cannot run on the GPU path ("" when it can).
std::string device_unsupported(const Config& c) {
#ifdef MOE_WITH_CUDA
  return gpu::device_step_unsupported(c);
#else
  (void)c;
  return "this build has no CUDA backend (configure with -DMOE_CUDA=ON where nvcc is installed)";
#endif
}

}  // namespace

std::string resolve_device(const Config& c, comm::Communicator& world) {
  const std::string& want = c.train.device;
  if (want == "cpu") return "cpu";
  const std::string why = device_unsupported(c);
  const bool ok = why.empty() && cuda_devices() > 0;
  double any_not_ok = ok ? 0.0 : 1.0;  // every rank must be able to: max over the ranks of "cannot"
  world.allreduce_max(&any_not_ok, 1);
  if (any_not_ok == 0) return "cuda";
  if (want == "auto") return "cpu";
  if (!why.empty()) throw ConfigError("train.device cuda in " + c.source + ": " + why);
  throw ConfigError("train.device cuda in " + c.source + ": no CUDA device is visible to " +
                    (ok ? std::string("another rank") : "rank " + std::to_string(world.rank())) +
                    "; use train.device cpu or auto");
}

std::unique_ptr<TokenDecoder> make_token_decoder(const Config& c, const ModelParams& p, const float* params,
                                                 int64_t capacity, const std::string& device) {
  if (device != "cpu" && device != "cuda" && device != "auto")
    throw ConfigError("--device " + device + ": use cpu, cuda or auto");
  if (device != "cpu") {
#ifdef MOE_WITH_CUDA
    std::string why = gpu::device_decode_unsupported(c);
    if (why.empty() && cuda_devices() == 0) why = "no CUDA device is visible";
#else
    const std::string why = "this build has no CUDA backend";
#endif
    if (why.empty()) {
#ifdef MOE_WITH_CUDA
      return std::make_unique<gpu::DeviceDecoder>(c, params, capacity, nullptr);
#endif
    } else if (device == "cuda") {
      throw ConfigError("--device cuda: " + why + "; use --device cpu or auto");
    }
  }
  return std::make_unique<Decoder>(c, p, capacity);
}

}  // namespace moe
