// Native GPU tests of the CUDA part through its C ABI: buffers, fill, and the AdamW kernel against the
// host evaluation of the same per-element formula (addon/src/optim/adamw_math.h). Built by scripts/gpu/run.sh;
// CI compiles it with g++ so it never rots. Exits non-zero on any mismatch.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "dtrain_cuda.h"
#include "optim/adamw_math.h"

namespace {
int failures = 0;

void Expect(bool ok, const char* what) {
  std::printf("%s  %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++failures;
}

void Check(int rc, const char* what) {
  if (rc != 0) {
    std::printf("FAIL  %s: %s\n", what, dtrain_cuda_last_error());
    std::exit(1);
  }
}

// AdamW on the host with the shared formula, in fp32 params or via an fp32 master for bf16.
void HostStep(std::vector<float>& p, const std::vector<float>& g, std::vector<float>& m, std::vector<float>& v,
              const dtrain_adamw_hparams& hp) {
  dtrain::adamw::Hyper h{hp.lr, hp.beta1, hp.beta2, hp.eps, hp.weight_decay};
  auto k = dtrain::adamw::make_step_consts(h, hp.step, hp.grad_scale);
  for (size_t i = 0; i < p.size(); ++i) dtrain::adamw::update(p[i], g[i], m[i], v[i], k);
}
}  // namespace

int main() {
  int count = 0;
  Check(dtrain_cuda_device_count(&count), "device count");
  if (count == 0) {
    std::printf("FAIL  no CUDA device: %s\n", dtrain_cuda_last_error());
    return 1;
  }
  // Odd length: exercises the vectorised body and the scalar tail of the fp32 kernel.
  const size_t n = (1u << 20) + 3;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::vector<float> p(n), m(n, 0.f), v(n, 0.f);
  for (auto& x : p) x = normal(rng);
  std::vector<float> hp_ = p, hm = m, hv = v;

  void *dp, *dg, *dm, *dv;
  Check(dtrain_cuda_malloc(&dp, n * 4), "malloc");
  Check(dtrain_cuda_malloc(&dg, n * 4), "malloc");
  Check(dtrain_cuda_malloc(&dm, n * 4), "malloc");
  Check(dtrain_cuda_malloc(&dv, n * 4), "malloc");
  Check(dtrain_cuda_h2d(dp, p.data(), n * 4), "h2d");
  Check(dtrain_cuda_fill(dm, DTRAIN_F32, n, 0.0), "fill");
  Check(dtrain_cuda_fill(dv, DTRAIN_F32, n, 0.0), "fill");

  std::vector<float> g(n);
  for (int step = 1; step <= 5; ++step) {
    for (auto& x : g) x = normal(rng);
    dtrain_adamw_hparams hp{1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, step, step == 3 ? 0.5f : 1.0f};
    Check(dtrain_cuda_h2d(dg, g.data(), n * 4), "h2d");
    Check(dtrain_cuda_adamw_step(dp, DTRAIN_F32, nullptr, static_cast<float*>(dg), static_cast<float*>(dm),
                                 static_cast<float*>(dv), n, &hp),
          "adamw");
    HostStep(hp_, g, hm, hv, hp);
  }
  std::vector<float> out(n);
  Check(dtrain_cuda_d2h(out.data(), dp, n * 4), "d2h");
  // nvcc contracts a·b + c into one FMA, the host compiler does not: results differ in the last bits. The
  // error is measured against the larger of |p| and one step's size (lr), so parameters that happen to be
  // near zero do not turn an ulp into a large relative error; 1e-6 is a few float ulps.
  double worst = 0, worst_abs = 0;
  for (size_t i = 0; i < n; ++i) {
    double d = std::fabs(out[i] - hp_[i]);
    worst_abs = std::fmax(worst_abs, d);
    worst = std::fmax(worst, d / (std::fabs(hp_[i]) + 1e-3));
  }
  char line[200];
  std::snprintf(line, sizeof line,
                "AdamW fp32 GPU vs host formula, 5 steps (clipping on step 3): max diff %.2e, relative to |p| + lr %.2e",
                worst_abs, worst);
  Expect(worst < 1e-6, line);

  // bf16 params with an fp32 master: the params must be the rounded master.
  void* dpb;
  Check(dtrain_cuda_malloc(&dpb, n * 2), "malloc");
  Check(dtrain_cuda_h2d(dp, p.data(), n * 4), "h2d");
  dtrain_adamw_hparams hp{1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 1, 1.0f};
  Check(dtrain_cuda_adamw_step(dpb, DTRAIN_BF16, static_cast<float*>(dp), static_cast<float*>(dg),
                               static_cast<float*>(dm), static_cast<float*>(dv), n, &hp),
        "adamw bf16");
  std::vector<uint16_t> pb(n);
  Check(dtrain_cuda_d2h(pb.data(), dpb, n * 2), "d2h");
  Check(dtrain_cuda_d2h(out.data(), dp, n * 4), "d2h");
  size_t mismatched = 0;
  for (size_t i = 0; i < n; ++i) mismatched += pb[i] != dtrain::adamw::float_to_bf16(out[i]);
  Expect(mismatched == 0, "AdamW bf16 params equal the rounded fp32 master");

  for (void* q : {dp, dg, dm, dv, dpb}) Check(dtrain_cuda_free(q), "free");
  std::printf("%d failed\n", failures);
  return failures ? 1 : 0;
}
