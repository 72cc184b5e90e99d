#include "src/train/evaluate.h"

#include <cmath>
#include <vector>

#include "data/loader.h"
#include "src/core/error.h"
#include "src/model/transformer.h"

namespace moe {

EvalResult evaluate(const Config& c, const ModelParams& p, int64_t batches, comm::Communicator& dp,
                    const DispatcherFactory& make_dispatcher, comm::Communicator* tp, comm::Communicator* etp) {
  const int64_t T = c.model.seq_len, B = c.train.batch_size;
  data::EvalReader reader(c.data.path, T, c.model.vocab_size);
  const int64_t available = reader.num_sequences() / B;
  if (available == 0)
    throw DataError("the valid split of " + c.data.path + " has " + std::to_string(reader.num_sequences()) +
                    " sequences of " + std::to_string(T + 1) + " tokens, fewer than one batch of " +
                    std::to_string(B) + ": prepare with a larger --valid-fraction or lower train.batch_size");
  const int64_t n = batches > 0 ? std::min(batches, available) : available;
  const int64_t rows = B / dp.size(), first_row = int64_t(dp.rank()) * rows;
  Transformer model(c, rows, make_dispatcher, tp, etp);
  std::vector<int32_t> tokens(size_t(rows * (T + 1)));
  // Router statistics over the whole batch, so capacity drops match the single-process run.
  const SumReducer reduce = [&](std::vector<double>& v) { dp.allreduce_sum(v.data(), int64_t(v.size())); };
  double sum = 0;
  for (int64_t b = 0; b < n; ++b) {
    reader.read(b * B + first_row, rows, tokens.data());
    sum += model.forward(tokens.data(), p, reduce).lm_sum;
  }
  dp.allreduce_sum(&sum, 1);
  EvalResult r;
  r.tokens = n * B * T;
  r.loss = sum / double(r.tokens);
  r.ppl = std::exp(r.loss);
  return r;
}

}  // namespace moe
