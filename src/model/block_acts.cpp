#include "src/model/block_acts.h"

namespace moe {

size_t attention_acts_floats(const AttentionActs& a) {
  return a.x_in.size() + a.xn.size() + a.rstd.size() + a.q.size() + a.k.size() + a.v.size() + a.att.size() +
         a.y.size() + a.wo_partial.size();
}

size_t ffn_acts_floats(const FfnActs& f) {
  size_t n = f.x_in.size() + f.xn.size() + f.rstd.size() + f.dense.a.size() + f.dense.b.size() + f.dense.h.size();
  const MoeLayerState& m = f.moe;
  n += m.expert_in.size() + m.experts.a.size() + m.experts.b.size() + m.experts.h.size() + m.experts.out.size() +
       m.router.logits.size() + m.router.scores.size();
  n += m.shared.a.size() + m.shared.b.size() + m.shared.h.size();
  n += m.etp_rows.size() + m.etp_out.size();  // etp over dp ranks: the gathered rows
  return n;
}

}  // namespace moe
