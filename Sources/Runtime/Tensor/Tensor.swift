/// A dense fp32 tensor with value semantics (copy-on-write through `Array`).
///
/// Layout is row-major over `shape`. Model code keeps activations channels-last
/// (`[images, height, width, channels]`) so that convolutions, linear layers and
/// attention all see contiguous rows of channels and need no layout copies.
public struct Tensor: Sendable, Equatable {
    public private(set) var shape: [Int]
    public var scalars: [Float]

    public init(shape: [Int], scalars: [Float]) {
        precondition(shape.reduce(1, *) == scalars.count,
                     "shape \(shape) holds \(shape.reduce(1, *)) scalars, got \(scalars.count)")
        self.shape = shape
        self.scalars = scalars
    }

    public init(zeros shape: [Int]) {
        self.shape = shape
        self.scalars = [Float](repeating: 0, count: shape.reduce(1, *))
    }

    public init(shape: [Int], repeating value: Float) {
        self.shape = shape
        self.scalars = [Float](repeating: value, count: shape.reduce(1, *))
    }

    public var count: Int { scalars.count }

    /// Storage for an op that writes every element: skips zero-filling, which showed up as a
    /// few percent of a forward pass.
    static func uninitializedScalars(_ count: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }
    public var rank: Int { shape.count }

    /// Same scalars, new shape; the element count must not change.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, scalars: scalars)
    }

    public mutating func reshape(_ newShape: [Int]) {
        precondition(newShape.reduce(1, *) == scalars.count, "cannot reshape \(shape) to \(newShape)")
        shape = newShape
    }

    /// General axis permutation (a copy). Used only at model boundaries, never in hot loops.
    public func permuted(_ axes: [Int]) -> Tensor {
        precondition(axes.count == rank && Set(axes) == Set(0..<rank), "bad permutation \(axes) for rank \(rank)")
        let newShape = axes.map { shape[$0] }
        var strides = [Int](repeating: 1, count: rank)
        for i in stride(from: rank - 2, through: 0, by: -1) { strides[i] = strides[i + 1] * shape[i + 1] }
        let srcStrides = axes.map { strides[$0] }
        var out = [Float](repeating: 0, count: count)
        var index = [Int](repeating: 0, count: rank)
        scalars.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                var offset = 0
                for linear in 0..<count {
                    dst[linear] = src[offset]
                    var axis = rank - 1
                    while axis >= 0 {
                        index[axis] += 1
                        offset += srcStrides[axis]
                        if index[axis] < newShape[axis] { break }
                        offset -= srcStrides[axis] * newShape[axis]
                        index[axis] = 0
                        axis -= 1
                    }
                }
            }
        }
        return Tensor(shape: newShape, scalars: out)
    }

    /// Largest absolute element-wise difference; shapes must match.
    public func maxAbsDifference(_ other: Tensor) -> Float {
        precondition(shape == other.shape, "shape \(shape) vs \(other.shape)")
        var m: Float = 0
        for i in 0..<count { m = Swift.max(m, abs(scalars[i] - other.scalars[i])) }
        return m
    }

    /// Population standard deviation, accumulated in Double.
    public func standardDeviation() -> Float {
        guard count > 0 else { return 0 }
        var sum = 0.0, sq = 0.0
        for v in scalars { sum += Double(v); sq += Double(v) * Double(v) }
        let mean = sum / Double(count)
        return Float((sq / Double(count) - mean * mean).squareRoot())
    }
}
