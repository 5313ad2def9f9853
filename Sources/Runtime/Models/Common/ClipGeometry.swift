/// How a channels-last activation `[batch * frames, height, width, channels]` splits into clips.
public struct ClipGeometry: Sendable, Equatable {
    public var batch: Int
    public var frames: Int
    public var height: Int
    public var width: Int

    public init(batch: Int, frames: Int, height: Int, width: Int) {
        self.batch = batch
        self.frames = frames
        self.height = height
        self.width = width
    }

    public var images: Int { batch * frames }
    public var pixels: Int { height * width }
}

/// Layout conversions at model boundaries: diffusers clips are `[B, C, F, H, W]`; the runtime
/// computes on channels-last `[B*F, H, W, C]`.
public enum ClipLayout {
    public static func toChannelsLast(_ x: Tensor) -> Tensor {
        precondition(x.rank == 5, "expected [B, C, F, H, W], got \(x.shape)")
        let (b, c, f, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[4])
        return x.permuted([0, 2, 3, 4, 1]).reshaped([b * f, h, w, c])
    }

    public static func fromChannelsLast(_ x: Tensor, batch: Int) -> Tensor {
        precondition(x.rank == 4 && x.shape[0] % batch == 0, "expected [B*F, H, W, C], got \(x.shape)")
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        return x.reshaped([batch, n / batch, h, w, c]).permuted([0, 4, 1, 2, 3])
    }

    /// `[N, C, H, W]` ⇄ `[N, H, W, C]` for per-frame image tensors.
    public static func imagesToChannelsLast(_ x: Tensor) -> Tensor { x.permuted([0, 2, 3, 1]) }
    public static func imagesFromChannelsLast(_ x: Tensor) -> Tensor { x.permuted([0, 3, 1, 2]) }
}

/// Elementwise helpers on equally shaped tensors.
extension Tensor {
    mutating func add(_ other: Tensor) {
        precondition(shape == other.shape, "add: \(shape) vs \(other.shape)")
        let n = count
        scalars.withUnsafeMutableBufferPointer { d in
            other.scalars.withUnsafeBufferPointer { s in
                let dp = d.baseAddress!, sp = s.baseAddress!
                parallelChunks(n, minimumChunk: 32768) { r in for i in r { dp[i] += sp[i] } }
            }
        }
    }
}
