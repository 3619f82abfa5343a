// Fused element-wise ops for BERT's training graph, as a TensorFlow op
// library (tf.load_op_library; bert_mtl/fused_ops.py loads it and registers
// the gradients).  Each op replaces a chain of core ops that each read and
// write a whole activation tensor:
//
//   BertMtlDropout(x, seed; rate)  x * keep / (1 - rate), keep drawn from a
//       counter-based hash of (seed, element index) (bert_mtl.testing.
//       reference_fused_ops has it in numpy): the gradient is the same op
//       on dy with the same seed, so no mask is stored.  Replaces
//       RandomUniform + GreaterEqual + Select + Mul.
//   BertMtlGelu(x), BertMtlGeluGrad(dy, x)  BERT's tanh GELU and its
//       derivative in one pass each (replace 8 forward and ~12 backward ops).
//
// float32 and bfloat16; arithmetic in float32.  Exports never contain these
// ops (model_fn builds PREDICT graphs from core ops).

#define EIGEN_USE_THREADS

#include <cmath>
#include <cstdint>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/util/work_sharder.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace bert_mtl {
namespace {

using tensorflow::DEVICE_CPU;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;

// Whether element `index` survives dropout at `rate` under `seed`: the top
// 24 bits of MurmurHash3's 32-bit finalizer of (index, seed), as a uniform
// in [0, 1), against the rate.  32-bit arithmetic, so the loop vectorizes.
inline bool Keep(uint32_t seed_low, uint32_t seed_high, uint32_t index,
                 float rate) {
  uint32_t h = (index * 0x9E3779B1u + seed_low) ^ seed_high;
  h ^= h >> 16;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  h ^= h >> 16;
  return static_cast<float>(h >> 8) * (1.0f / 16777216.0f) >= rate;
}

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kCubic = 0.044715f;

// tanh(k (x + c x^3)), the inner term of BERT's GELU, as a lazy Eigen
// expression (vectorized tanh) over a float expression x.
template <typename Expression>
auto GeluTanh(const Expression& x) {
  return ((x + x * x * x * kCubic) * kSqrt2OverPi).tanh();
}

// Runs fn(begin, end) over [0, n) on the op's CPU worker threads; `cost` is
// the rough cycles per element.
template <typename Fn>
void ForShards(OpKernelContext* context, int64_t n, int64_t cost, Fn fn) {
  auto* workers = context->device()->tensorflow_cpu_worker_threads();
  tensorflow::Shard(workers->num_threads, workers->workers, n, cost, fn);
}

// The dropout loop, compiled for AVX-512, AVX2 and the baseline (the
// loader picks the best the CPU has).
template <typename T>
__attribute__((target_clones("avx512f", "avx2", "default")))
void DropoutRange(const T* in, T* out, int64_t begin, int64_t end,
                  uint64_t seed, float rate, float scale) {
  const uint32_t low = static_cast<uint32_t>(seed);
  const uint32_t high = static_cast<uint32_t>(seed >> 32);
  for (int64_t i = begin; i < end; ++i) {
    const float kept = Keep(low, high, static_cast<uint32_t>(i), rate)
                           ? scale : 0.0f;
    out[i] = static_cast<T>(static_cast<float>(in[i]) * kept);
  }
}

template <typename T>
class DropoutOp : public OpKernel {
 public:
  explicit DropoutOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("rate", &rate_));
    OP_REQUIRES(context, rate_ >= 0.0f && rate_ < 1.0f,
                tensorflow::errors::InvalidArgument(
                    "dropout rate must be in [0, 1), got ", rate_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& x = context->input(0);
    const Tensor& seed = context->input(1);
    OP_REQUIRES(context, seed.NumElements() == 1,
                tensorflow::errors::InvalidArgument(
                    "seed must be a scalar, got shape ",
                    seed.shape().DebugString()));
    Tensor* y = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, x.shape(), &y));
    const uint64_t key = static_cast<uint64_t>(seed.flat<int64_t>()(0));
    OP_REQUIRES(context, x.NumElements() <= (int64_t{1} << 32),
                tensorflow::errors::InvalidArgument(
                    "dropout takes at most 2^32 elements, got ",
                    x.NumElements()));
    const float rate = rate_, scale = 1.0f / (1.0f - rate_);
    const T* in = x.flat<T>().data();
    T* out = y->flat<T>().data();
    ForShards(context, x.NumElements(), 4, [&](int64_t begin, int64_t end) {
      DropoutRange(in, out, begin, end, key, rate, scale);
    });
  }

 private:
  float rate_;
};

template <typename T>
class GeluOp : public OpKernel {
 public:
  explicit GeluOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& x = context->input(0);
    Tensor* y = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, x.shape(), &y));
    // Eigen's vectorized tanh, one pass over x on the op's thread pool.
    auto in = x.flat<T>().template cast<float>();
    auto t = GeluTanh(in);
    y->flat<T>().device(context->eigen_cpu_device()) =
        (in * 0.5f * (t + 1.0f)).template cast<T>();
  }
};

template <typename T>
class GeluGradOp : public OpKernel {
 public:
  explicit GeluGradOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& dy = context->input(0);
    const Tensor& x = context->input(1);
    OP_REQUIRES(context, dy.shape() == x.shape(),
                tensorflow::errors::InvalidArgument(
                    "dy and x differ in shape: ", dy.shape().DebugString(),
                    " and ", x.shape().DebugString()));
    Tensor* dx = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, x.shape(), &dx));
    // d/dx of 0.5 x (1 + t), t = tanh(k (x + c x^3)):
    // 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 c x^2).
    auto grad = dy.flat<T>().template cast<float>();
    auto in = x.flat<T>().template cast<float>();
    auto t = GeluTanh(in);
    dx->flat<T>().device(context->eigen_cpu_device()) =
        (grad * ((t + 1.0f) * 0.5f +
                 in * 0.5f * (1.0f - t * t) * kSqrt2OverPi *
                     (in * in * (3.0f * kCubic) + 1.0f)))
            .template cast<T>();
  }
};

}  // namespace

REGISTER_OP("BertMtlDropout")
    .Input("x: T")
    .Input("seed: int64")
    .Output("y: T")
    .Attr("rate: float")
    .Attr("T: {float, bfloat16}")
    .SetShapeFn(tensorflow::shape_inference::UnchangedShape);

REGISTER_OP("BertMtlGelu")
    .Input("x: T")
    .Output("y: T")
    .Attr("T: {float, bfloat16}")
    .SetShapeFn(tensorflow::shape_inference::UnchangedShape);

REGISTER_OP("BertMtlGeluGrad")
    .Input("dy: T")
    .Input("x: T")
    .Output("dx: T")
    .Attr("T: {float, bfloat16}")
    .SetShapeFn(tensorflow::shape_inference::UnchangedShape);

#define REGISTER_KERNELS(T)                                              \
  REGISTER_KERNEL_BUILDER(                                               \
      Name("BertMtlDropout").Device(DEVICE_CPU).TypeConstraint<T>("T"),  \
      DropoutOp<T>);                                                     \
  REGISTER_KERNEL_BUILDER(                                               \
      Name("BertMtlGelu").Device(DEVICE_CPU).TypeConstraint<T>("T"),     \
      GeluOp<T>);                                                        \
  REGISTER_KERNEL_BUILDER(                                               \
      Name("BertMtlGeluGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"), \
      GeluGradOp<T>);

REGISTER_KERNELS(float)
REGISTER_KERNELS(tensorflow::bfloat16)

}  // namespace bert_mtl
