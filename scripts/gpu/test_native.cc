// Native GPU tests of the CUDA part through its C ABI: buffers, fill, the AdamW kernel against the host
// evaluation of the same per-element formula (addon/src/optim/adamw_math.h), the layer kernels against their
// host mirror (addon/src/layers/act_math.h) and cuBLAS GEMM against a double-precision product. Built by
// scripts/gpu/run.sh; CI compiles it with g++ so it never rots. Exits non-zero on any mismatch.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "dtrain_cuda.h"
#include "half.h"
#include "layers/act_math.h"
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

// Device copies of host vectors, freed at the end of main.
std::vector<void*> g_allocs;
template <class T>
T* ToDevice(const std::vector<T>& host) {
  void* p = nullptr;
  Check(dtrain_cuda_malloc(&p, host.size() * sizeof(T) + 1), "malloc");
  if (!host.empty()) Check(dtrain_cuda_h2d(p, host.data(), host.size() * sizeof(T)), "h2d");
  g_allocs.push_back(p);
  return static_cast<T*>(p);
}
template <class T>
std::vector<T> ToHost(const T* dev, size_t n) {
  std::vector<T> out(n);
  if (n) Check(dtrain_cuda_d2h(out.data(), dev, n * sizeof(T)), "d2h");
  return out;
}

// The worst |got - want| / scale: a scale per element, or |want| + floor.
double WorstRel(const std::vector<float>& got, const std::vector<double>& want, double floor,
                const std::vector<double>* scale = nullptr) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double s = scale ? (*scale)[i] : std::fabs(want[i]) + floor;
    worst = std::fmax(worst, std::fabs(got[i] - want[i]) / s);
  }
  return worst;
}

float HostAct(int act, float z) {
  namespace lm = dtrain::layers::math;
  using dtrain::layers::Act;
  return act == DTRAIN_ACT_RELU ? lm::activate<Act::relu>(z) : act == DTRAIN_ACT_GELU ? lm::activate<Act::gelu>(z) : z;
}
float HostDerivative(int act, float z) {
  namespace lm = dtrain::layers::math;
  using dtrain::layers::Act;
  return act == DTRAIN_ACT_RELU   ? lm::derivative<Act::relu>(z)
         : act == DTRAIN_ACT_GELU ? lm::derivative<Act::gelu>(z)
                                  : 1.0f;
}

// Bias + activation forward and backward (odd shape: partial column tiles and grid-stride tails) against the
// host mirror: the same per-element formula, so only FMA contraction separates them.
void TestBiasAct(std::mt19937& rng) {
  std::normal_distribution<float> normal;
  const size_t rows = 257, cols = 131;
  std::vector<float> z(rows * cols), bias(cols), dy(rows * cols), dbias0(cols);
  for (auto& x : z) x = 3 * normal(rng);
  for (auto& x : bias) x = normal(rng);
  for (auto& x : dy) x = normal(rng);
  for (auto& x : dbias0) x = normal(rng);
  const char* names[] = {"none", "relu", "gelu"};
  for (int act = 0; act < 3; ++act) {
    float* dz_ = ToDevice(z);
    float* dbias = ToDevice(bias);
    float* dy_out = ToDevice(std::vector<float>(rows * cols, 0.f));
    Check(dtrain_cuda_bias_act(dz_, dbias, dy_out, rows, cols, act), "bias_act");
    // Contraction errors scale with |z| (GELU's 1 + tanh cancels for negative z, its derivative's 1 - tanh²
    // is scaled by z³), so the y and dz errors are measured against |z| + 1 and |dy|·(|z| + 1).
    std::vector<double> want_z(rows * cols), want_y(rows * cols), y_scale(rows * cols), dz_scale(rows * cols);
    std::vector<float> zb(rows * cols);
    for (size_t i = 0; i < rows * cols; ++i) {
      zb[i] = z[i] + bias[i % cols];
      want_z[i] = zb[i];
      want_y[i] = HostAct(act, zb[i]);
      y_scale[i] = std::fabs(zb[i]) + 1;
      dz_scale[i] = std::fabs(dy[i]) * (std::fabs(zb[i]) + 1) + 1e-30;
    }
    char line[200];
    const double fz = WorstRel(ToHost(dz_, rows * cols), want_z, 1e-6);
    const double fy = WorstRel(ToHost(dy_out, rows * cols), want_y, 0, &y_scale);
    std::snprintf(line, sizeof line, "bias_act %s forward vs host mirror: z %.2e, y %.2e (of |z| + 1)", names[act], fz,
                  fy);
    Expect(fz == 0 && fy < 1e-6, line);

    float* d_dy = ToDevice(dy);
    float* d_dbias = ToDevice(dbias0);
    float* d_dz = ToDevice(std::vector<float>(rows * cols, 0.f));
    Check(dtrain_cuda_bias_act_backward(d_dy, dz_, d_dz, d_dbias, rows, cols, act, 1), "bias_act_backward");
    std::vector<double> want_dz(rows * cols), want_db(cols);
    for (size_t c = 0; c < cols; ++c) want_db[c] = dbias0[c];
    for (size_t i = 0; i < rows * cols; ++i) {
      const float d = dy[i] * HostDerivative(act, zb[i]);
      want_dz[i] = d;
      want_db[i % cols] += d;
    }
    const double bz = WorstRel(ToHost(d_dz, rows * cols), want_dz, 0, &dz_scale);
    const double bb = WorstRel(ToHost(d_dbias, cols), want_db, 1.0);
    std::snprintf(line, sizeof line, "bias_act %s backward vs host mirror: dz %.2e, dbias (accumulated) %.2e",
                  names[act], bz, bb);
    Expect(bz < 1e-5 && bb < 1e-5, line);
  }
}

// Softmax cross-entropy: the mean loss and the scaled gradient against a double-precision reference, large
// logits included; a bad label fails with its row named.
void TestSoftmaxXent(std::mt19937& rng) {
  std::normal_distribution<float> normal;
  const size_t rows = 97, classes = 1000;
  std::vector<float> logits(rows * classes);
  std::vector<int32_t> labels(rows);
  for (auto& x : logits) x = 4 * normal(rng);
  for (size_t c = 0; c < classes; ++c) logits[c] += 1000.f;  // row 0: large logits stay finite
  for (size_t r = 0; r < rows; ++r) labels[r] = static_cast<int32_t>((r * 37) % classes);
  const double scale = 1.0 / rows;
  float* d_logits = ToDevice(logits);
  int32_t* d_labels = ToDevice(labels);
  float* d_grad = ToDevice(std::vector<float>(rows * classes, 0.f));
  double loss = 0;
  Check(dtrain_cuda_softmax_xent(d_logits, d_labels, rows, classes, scale, d_grad, &loss), "softmax_xent");
  double want_loss = 0;
  std::vector<double> want_grad(rows * classes);
  for (size_t r = 0; r < rows; ++r) {
    const float* x = &logits[r * classes];
    double max = x[0], sum = 0;
    for (size_t c = 1; c < classes; ++c) max = std::fmax(max, x[c]);
    for (size_t c = 0; c < classes; ++c) sum += std::exp(x[c] - max);
    want_loss += std::log(sum) + max - x[labels[r]];
    for (size_t c = 0; c < classes; ++c)
      want_grad[r * classes + c] = (std::exp(x[c] - max) / sum - (c == (size_t)labels[r] ? 1 : 0)) * scale;
  }
  want_loss /= rows;
  const double gerr = WorstRel(ToHost(d_grad, rows * classes), want_grad, scale);
  char line[200];
  std::snprintf(line, sizeof line, "softmax_xent vs double reference: loss %.6f (want %.6f), grad %.2e", loss,
                want_loss, gerr);
  Expect(std::fabs(loss - want_loss) < 1e-5 * std::fabs(want_loss) + 1e-6 && gerr < 1e-5, line);

  labels[41] = static_cast<int32_t>(classes);
  int32_t* d_bad = ToDevice(labels);
  const int rc = dtrain_cuda_softmax_xent(d_logits, d_bad, rows, classes, scale, d_grad, &loss);
  Expect(rc == DTRAIN_CUDA_EARG && std::string(dtrain_cuda_last_error()).find("labels[41] = 1000") == 0,
         "softmax_xent names the first bad label");
}

// cuBLAS GEMM in every transpose, fp32 and bf16 inputs, overwrite and accumulate, against a double product of
// the same (rounded) inputs; the bound is k·ε(fp32)·Σ|a·b| (fp32 accumulation either way).
void TestGemm(std::mt19937& rng) {
  if (dtrain_cublas_load(nullptr) != 0) {
    std::printf("FAIL  cuBLAS: %s\n", dtrain_cuda_last_error());
    ++failures;
    return;
  }
  std::printf("      cuBLAS from %s\n", dtrain_cublas_loaded_path());
  std::normal_distribution<float> normal;
  const size_t m = 67, n = 45, k = 129;
  for (int dtype : {DTRAIN_F32, DTRAIN_BF16}) {
    for (int flags = 0; flags < 8; ++flags) {
      const bool ta = flags & 1, tb = flags & 2, acc = flags & 4;
      std::vector<float> a(m * k), b(k * n), c0(m * n);
      for (auto& x : a) x = normal(rng);
      for (auto& x : b) x = normal(rng);
      for (auto& x : c0) x = normal(rng);
      std::vector<uint16_t> a16(a.size()), b16(b.size());
      if (dtype == DTRAIN_BF16) {  // the reference multiplies what the GPU sees: the bf16-rounded inputs
        for (size_t i = 0; i < a.size(); ++i) a[i] = dtrain::bf16ToF32(a16[i] = dtrain::f32ToBf16(a[i]));
        for (size_t i = 0; i < b.size(); ++i) b[i] = dtrain::bf16ToF32(b16[i] = dtrain::f32ToBf16(b[i]));
      }
      const void* da = dtype == DTRAIN_BF16 ? static_cast<const void*>(ToDevice(a16)) : ToDevice(a);
      const void* db = dtype == DTRAIN_BF16 ? static_cast<const void*>(ToDevice(b16)) : ToDevice(b);
      float* dc = ToDevice(c0);
      Check(dtrain_cuda_gemm(da, db, dc, m, n, k, flags, dtype), "gemm");
      const std::vector<float> got = ToHost(dc, m * n);
      double worst = 0;
      for (size_t i = 0; i < m; ++i) {
        for (size_t j = 0; j < n; ++j) {
          double s = acc ? c0[i * n + j] : 0, bound = std::fabs(s);
          for (size_t p = 0; p < k; ++p) {
            const double v = double(ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
            s += v;
            bound += std::fabs(v);
          }
          worst = std::fmax(worst, std::fabs(got[i * n + j] - s) / (2.0 * (k + 2) * 0x1p-24 * bound + 1e-30));
        }
      }
      char line[200];
      std::snprintf(line, sizeof line, "gemm %s transA=%d transB=%d accumulate=%d: worst error %.2f of the fp32 bound",
                    dtype == DTRAIN_BF16 ? "bf16" : "fp32", ta, tb, acc, worst);
      Expect(worst <= 1, line);
    }
  }
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
  std::snprintf(
      line, sizeof line,
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
  for (size_t i = 0; i < n; ++i) mismatched += pb[i] != dtrain::f32ToBf16(out[i]);
  Expect(mismatched == 0, "AdamW bf16 params equal the rounded fp32 master");

  for (void* q : {dp, dg, dm, dv, dpb}) Check(dtrain_cuda_free(q), "free");

  TestBiasAct(rng);
  TestSoftmaxXent(rng);
  TestGemm(rng);
  for (void* q : g_allocs) Check(dtrain_cuda_free(q), "free");
  std::printf("%d failed\n", failures);
  return failures ? 1 : 0;
}
