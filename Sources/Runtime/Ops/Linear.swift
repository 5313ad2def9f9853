/// `y = x W^T + b` over the last axis, PyTorch `nn.Linear` semantics (weight `[out, in]`).
public struct Linear: Sendable {
    public let inFeatures: Int
    public let outFeatures: Int
    let weight: WeightMatrix
    let bias: [Float]?

    public init(weight: [Float], bias: [Float]?, inFeatures: Int, outFeatures: Int, precision: ComputePrecision = .fp32) {
        self.init(weight: .floats(weight), bias: bias, inFeatures: inFeatures, outFeatures: outFeatures, precision: precision)
    }

    init(weight: WeightValues, bias: [Float]?, inFeatures: Int, outFeatures: Int, precision: ComputePrecision = .fp32,
         kernels: ComputeKernels = .active) {
        precondition(weight.count == inFeatures * outFeatures)
        precondition(bias == nil || bias!.count == outFeatures)
        self.weight = WeightMatrix(weight, outFeatures: outFeatures, inFeatures: inFeatures, precision: precision,
                                   kernels: kernels)
        self.bias = bias
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
    }

    /// Applies the layer to `rows` contiguous rows of `inFeatures` (row stride `inputStride`).
    func apply(rows: Int, input: UnsafePointer<Float>, inputStride: Int? = nil,
               output: UnsafeMutablePointer<Float>, outputStride: Int? = nil, accumulate: Bool = false) {
        let ldc = outputStride ?? outFeatures
        weight.multiply(rows: rows, a: input, lda: inputStride ?? inFeatures, accumulate: accumulate, c: output, ldc: ldc)
        if let bias {
            bias.withUnsafeBufferPointer { b in
                for r in 0..<rows {
                    let row = output + r * ldc
                    for j in 0..<outFeatures { row[j] += b[j] }
                }
            }
        }
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.shape.last == inFeatures, "Linear expects last axis \(inFeatures), got \(x.shape)")
        let rows = x.count / inFeatures
        var outShape = x.shape
        outShape[outShape.count - 1] = outFeatures
        var out = Tensor.uninitializedScalars(rows * outFeatures)
        x.scalars.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                apply(rows: rows, input: src.baseAddress!, output: dst.baseAddress!)
            }
        }
        return Tensor(shape: outShape, scalars: out)
    }
}
