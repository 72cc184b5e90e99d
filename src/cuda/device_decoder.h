// Incremental decoding on a GPU, twin of src/train/generate.h's Decoder: the same KV-cache
// forward of one token (fp32 weights and arithmetic), so `moe generate` samples the same text on
// either device up to rounding. Routing: the softmax router (the CUDA router kernel), dense
// layers and routed experts; device_decode_unsupported names anything else.
#pragma once
#include <cuda_runtime.h>

#include <string>
#include <vector>

#include "src/cuda/device_array.h"
#include "src/model/dims.h"
#include "src/model/params.h"
#include "src/train/config.h"
#include "src/train/generate.h"

namespace moe::gpu {

// "" when DeviceDecoder runs this config, else why not.
std::string device_decode_unsupported(const Config& c);

class DeviceDecoder final : public TokenDecoder {
 public:
  // host_params: the model's flat parameter buffer (build_param_table(c) order); up to `capacity`
  // positions.
  DeviceDecoder(const Config& c, const float* host_params, int64_t capacity, cudaStream_t stream);
  const std::vector<float>& feed(int32_t token) override;
  int64_t position() const { return pos_; }

 private:
  void moe_ffn(const BlockParams& p);

  Config c_;
  Dims d_;
  cudaStream_t s_;
  ParamTable table_;
  DeviceArray<float> params_;
  ModelParams P_;
  int64_t capacity_, pos_ = 0;
  DeviceArray<float> kcache_, vcache_, scores_;
  DeviceArray<float> x_, xn_, rstd_, q_, y_, h1_, h3_, act_, ye_, rlogits_, probs_, weights_, logits_;
  DeviceArray<int32_t> token_, idx_;
  std::vector<float> logits_host_, weights_host_;
  std::vector<int32_t> idx_host_;
};

}  // namespace moe::gpu
