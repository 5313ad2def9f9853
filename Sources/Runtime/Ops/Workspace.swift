/// Scratch memory reused across ops and denoising steps so that hot loops do not allocate.
/// One workspace belongs to one forward pass at a time (it is not shared between threads).
public struct Workspace {
    var im2col: [Float] = []
    var scores: [Float] = []

    public init() {}

    mutating func im2colBuffer(minimumCount: Int) -> Int {
        if im2col.count < minimumCount { im2col = [Float](repeating: 0, count: minimumCount) }
        return im2col.count
    }

    mutating func scoresBuffer(minimumCount: Int) {
        if scores.count < minimumCount { scores = [Float](repeating: 0, count: minimumCount) }
    }
}
