/// Which generator turns a seed into noise: vidrd's own documented one, or PyTorch's, so that a
/// seed means the same noise here as in PyTorch code.
public enum NoiseGenerator: String, Sendable, CaseIterable {
    /// `SeededRandomSource` (xoshiro256**), the default.
    case vidrd
    /// `TorchRandomSource`: every draw is one `torch.randn(shape, generator=g)` — what diffusers'
    /// pipelines draw with a CPU `torch.Generator().manual_seed(seed)`.
    case torch
    /// PyTorch's generator in the VidRD authors' order: their `randn_progressive` draws clip 0 one
    /// frame at a time (`[1, C, 1, h, w]` each), later clips in one piece.
    case torchReuseAndDiffuse = "torch-rd"

    public func source(seed: UInt64) -> any RandomSource & Sendable {
        switch self {
        case .vidrd: return SeededRandomSource(seed: seed)
        case .torch: return TorchRandomSource(seed: seed)
        case .torchReuseAndDiffuse: return ReuseAndDiffuseDrawOrder(TorchRandomSource(seed: seed))
        }
    }
}

/// The authors' draw order over any source: the first latent draw `[1, C, F, h, w]` is assembled
/// from F draws of one frame (`[1, C, 1, h, w]`, channel-major), as their
/// `randn_progressive(shape, dim=2)` draws the first clip; every later draw passes through.
public struct ReuseAndDiffuseDrawOrder<Base: RandomSource & Sendable>: RandomSource, Sendable {
    private var base: Base
    private var first = true

    public init(_ base: Base) { self.base = base }

    public mutating func standardNormal(count: Int) -> [Float] {
        first = false
        return base.standardNormal(count: count)
    }

    public mutating func standardNormal(shape: [Int]) throws -> Tensor {
        guard first, shape.count == 5, shape[0] == 1 else {
            first = false
            return try base.standardNormal(shape: shape)
        }
        first = false
        let (c, frames, plane) = (shape[1], shape[2], shape[3] * shape[4])
        var out = Tensor(zeros: shape)
        for f in 0..<frames {
            let frame = try base.standardNormal(shape: [1, c, 1, shape[3], shape[4]])
            out.scalars.withUnsafeMutableBufferPointer { d in
                for ch in 0..<c {
                    for i in 0..<plane { d[(ch * frames + f) * plane + i] = frame.scalars[ch * plane + i] }
                }
            }
        }
        return out
    }
}

extension ReuseAndDiffuseDrawOrder: ResumableRandomSource where Base: ResumableRandomSource {
    public func saveState(into writer: inout StateWriter) {
        writer.bool(first)
        base.saveState(into: &writer)
    }

    public mutating func restoreState(from reader: inout StateReader) throws {
        let f = try reader.bool("first-draw flag")
        var b = base
        try b.restoreState(from: &reader)
        first = f
        base = b
    }

    public var stateSizeBound: Int { 1 + base.stateSizeBound }
}
