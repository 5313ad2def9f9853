#if canImport(Glibc)
import Glibc
#endif

/// Group normalisation over channels-last data viewed as `[samples, positions, channels]`.
///
/// A "sample" is one image for 2-D norms, or one whole clip (all frames) for the temporal
/// layers, which diffusers normalises over `(C/g, F, H, W)` jointly. Statistics are accumulated
/// in Double to stay within PyTorch's rounding on large groups.
public struct GroupNorm: Sendable {
    public let groups: Int
    public let channels: Int
    public let eps: Float
    let gamma: [Float]
    let beta: [Float]

    public init(groups: Int, channels: Int, eps: Float, gamma: [Float], beta: [Float]) throws {
        guard groups > 0, channels % groups == 0 else {
            throw ModelError.invalidConfig("GroupNorm: \(channels) channels are not divisible into \(groups) groups")
        }
        precondition(gamma.count == channels && beta.count == channels)
        self.groups = groups
        self.channels = channels
        self.eps = eps
        self.gamma = gamma
        self.beta = beta
    }

    /// Normalises `samples` blocks of `positions * channels` scalars; optionally applies SiLU.
    func forward(_ src: UnsafePointer<Float>, samples: Int, positions: Int,
                 into dst: UnsafeMutablePointer<Float>, silu fuseSiLU: Bool = false) {
        let cpg = channels / groups
        let channels = self.channels
        let groups = self.groups
        let eps = Double(self.eps)
        gamma.withUnsafeBufferPointer { g in
            beta.withUnsafeBufferPointer { bt in
                parallelChunks(samples * groups) { range in
                    for sg in range {
                        let s = sg / groups
                        let grp = sg % groups
                        let base = s * positions * channels + grp * cpg
                        var sum = 0.0, sq = 0.0
                        for p in 0..<positions {
                            let row = src + base + p * channels
                            var ls: Float = 0, lq: Float = 0
                            for c in 0..<cpg { let v = row[c]; ls += v; lq += v * v }
                            sum += Double(ls); sq += Double(lq)
                        }
                        let n = Double(positions * cpg)
                        let mean = sum / n
                        let variance = Swift.max(0, sq / n - mean * mean)
                        let inv = Float(1 / (variance + eps).squareRoot())
                        let m = Float(mean)
                        for p in 0..<positions {
                            let row = src + base + p * channels
                            let out = dst + base + p * channels
                            for c in 0..<cpg {
                                let ch = grp * cpg + c
                                var v = (row[c] - m) * inv * g[ch] + bt[ch]
                                if fuseSiLU { v = v / (1 + expf(-v)) }
                                out[c] = v
                            }
                        }
                    }
                }
            }
        }
    }

    /// Convenience for tests and boundary code: normalises `x` viewed as `[samples, -1, channels]`.
    public func callAsFunction(_ x: Tensor, samples: Int, silu: Bool = false) -> Tensor {
        var out = x
        let positions = x.count / (samples * channels)
        x.scalars.withUnsafeBufferPointer { s in
            out.scalars.withUnsafeMutableBufferPointer { d in
                forward(s.baseAddress!, samples: samples, positions: positions, into: d.baseAddress!, silu: silu)
            }
        }
        return out
    }
}

/// Layer normalisation over the last axis (PyTorch `nn.LayerNorm`, elementwise affine).
public struct LayerNorm: Sendable {
    public let features: Int
    public let eps: Float
    let gamma: [Float]
    let beta: [Float]

    public init(features: Int, eps: Float, gamma: [Float], beta: [Float]) {
        precondition(gamma.count == features && beta.count == features)
        self.features = features
        self.eps = eps
        self.gamma = gamma
        self.beta = beta
    }

    func forward(_ src: UnsafePointer<Float>, rows: Int, into dst: UnsafeMutablePointer<Float>) {
        let n = features
        let eps = self.eps
        gamma.withUnsafeBufferPointer { g in
            beta.withUnsafeBufferPointer { b in
                parallelChunks(rows, minimumChunk: 64) { range in
                    for r in range {
                        let row = src + r * n
                        let out = dst + r * n
                        var sum: Float = 0
                        for j in 0..<n { sum += row[j] }
                        let mean = sum / Float(n)
                        var sq: Float = 0
                        for j in 0..<n { let d = row[j] - mean; sq += d * d }
                        let inv = 1 / (sq / Float(n) + eps).squareRoot()
                        for j in 0..<n { out[j] = (row[j] - mean) * inv * g[j] + b[j] }
                    }
                }
            }
        }
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        var out = x
        x.scalars.withUnsafeBufferPointer { s in
            out.scalars.withUnsafeMutableBufferPointer { d in
                forward(s.baseAddress!, rows: x.count / features, into: d.baseAddress!)
            }
        }
        return out
    }
}
