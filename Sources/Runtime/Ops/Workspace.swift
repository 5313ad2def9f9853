/// Scratch memory reused across ops and denoising steps so that hot loops do not allocate.
/// One workspace belongs to one forward pass at a time (it is not shared between threads).
public struct Workspace {
    var im2col: [Float] = []
    private let arena = ScratchArena()

    public init() {}

    mutating func im2colBuffer(minimumCount: Int) -> Int {
        if im2col.count < minimumCount { im2col = [Float](repeating: 0, count: minimumCount) }
        return im2col.count
    }

    /// A buffer of at least `count` floats for `slot`, valid until the same slot is requested
    /// again with a larger count. Contents are unspecified.
    func scratch(_ slot: ScratchSlot, count: Int) -> UnsafeMutablePointer<Float> {
        arena.buffer(slot.rawValue, count: count)
    }
}

/// The distinct temporaries of one layer; two live temporaries must use different slots.
enum ScratchSlot: Int, CaseIterable {
    case query, key, value, attended, normalized, residualBranch, feedForward, winogradInput, winogradOutput
}

/// Raw buffers that only grow; freed with the workspace.
final class ScratchArena {
    private var buffers: [UnsafeMutablePointer<Float>?] = Array(repeating: nil, count: ScratchSlot.allCases.count)
    private var capacities = [Int](repeating: 0, count: ScratchSlot.allCases.count)

    func buffer(_ slot: Int, count: Int) -> UnsafeMutablePointer<Float> {
        if let b = buffers[slot], capacities[slot] >= count { return b }
        buffers[slot]?.deallocate()
        let b = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(count, 1))
        buffers[slot] = b
        capacities[slot] = count
        return b
    }

    deinit { for b in buffers { b?.deallocate() } }
}
