import CVidrdKernels
#if canImport(Glibc)
import Glibc
#else
import Foundation
#endif

public enum Activation: String, Sendable {
    case silu
    case gelu          // exact (erf) GELU, PyTorch's default
    case quickGELU = "quick_gelu"
    case geluTanh = "gelu_new"

    public init(name: String) throws {
        switch name {
        case "silu", "swish": self = .silu
        case "gelu": self = .gelu
        case "quick_gelu": self = .quickGELU
        case "gelu_new", "gelu_pytorch_tanh": self = .geluTanh
        default: throw ModelError.unsupported("activation function \"\(name)\"")
        }
    }

    @inline(__always)
    func apply(_ x: Float) -> Float {
        switch self {
        case .silu: return x / (1 + expf(-x))
        case .gelu: return 0.5 * x * (1 + erff(x * 0.70710678118654752))
        case .quickGELU: return x / (1 + expf(-1.702 * x))
        case .geluTanh:
            return 0.5 * x * (1 + tanhf(0.79788456080286536 * (x + 0.044715 * x * x * x)))
        }
    }

    func apply(_ p: UnsafeMutablePointer<Float>, count: Int) {
        parallelChunks(count, minimumChunk: 16384) { range in
            switch self {
            case .silu: vidrd_silu(ComputeKernels.active.elementwiseISA, p + range.lowerBound, range.count)
            case .gelu: vidrd_gelu(ComputeKernels.active.elementwiseISA, p + range.lowerBound, range.count)
            default: for i in range { p[i] = apply(p[i]) }
            }
        }
    }

    public func callAsFunction(_ t: Tensor) -> Tensor {
        var out = t
        out.scalars.withUnsafeMutableBufferPointer { apply($0.baseAddress!, count: $0.count) }
        return out
    }
}
