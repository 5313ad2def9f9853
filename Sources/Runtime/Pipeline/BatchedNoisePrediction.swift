/// One U-Net call over the steps of several sessions (continuous batching): each entry brings
/// its latents (`[b, C, F, h, w]`, b = 2 for a guided step), its timesteps (per batch entry or per
/// entry and frame) and its text conditioning. The U-Net computes every entry independently of
/// the others, so each session gets exactly the prediction it would get alone.
public enum BatchedNoisePrediction {
    public struct Entry: Sendable {
        public let input: Tensor
        public let timesteps: [Float]
        public let conditioning: UNet3DConditionModel.TextConditioning

        public init(input: Tensor, timesteps: [Float], conditioning: UNet3DConditionModel.TextConditioning) {
            self.input = input
            self.timesteps = timesteps
            self.conditioning = conditioning
        }
    }

    /// The noise prediction of every entry, in order.
    public static func run(_ entries: [Entry], unet: VideoUNet, workspace: inout Workspace,
                           preemption: ((Double) -> Void)? = nil) throws -> [Tensor] {
        guard let first = entries.first else { return [] }
        if entries.count == 1 {
            return [try unet(first.input, timesteps: first.timesteps, conditioning: first.conditioning,
                             workspace: &workspace, preemption: preemption)]
        }
        let tail = Array(first.input.shape.dropFirst())
        guard first.input.rank == 5 else { throw ModelError.invalidInput("batched latents must be [b, C, F, h, w], got \(first.input.shape)") }
        let frames = tail[1]
        var sizes: [Int] = []
        var scalars: [Float] = []
        scalars.reserveCapacity(entries.reduce(0) { $0 + $1.input.count })
        var perFrame = false
        for e in entries {
            guard Array(e.input.shape.dropFirst()) == tail else {
                throw ModelError.invalidInput("steps of shapes \(first.input.shape) and \(e.input.shape) cannot share a U-Net call")
            }
            sizes.append(e.input.shape[0])
            scalars += e.input.scalars
            if e.timesteps.count != e.input.shape[0] { perFrame = true }
        }
        // Mixed per-entry and per-frame timesteps: spell every entry's out per frame, which the
        // U-Net treats exactly as the per-entry form.
        var timesteps: [Float] = []
        for e in entries {
            if perFrame && e.timesteps.count == e.input.shape[0] {
                timesteps += e.timesteps.flatMap { [Float](repeating: $0, count: frames) }
            } else {
                timesteps += e.timesteps
            }
        }
        let total = sizes.reduce(0, +)
        let conditioning = try UNet3DConditionModel.TextConditioning.concatenating(entries.map(\.conditioning))
        let out = try unet(Tensor(shape: [total] + tail, scalars: scalars), timesteps: timesteps, conditioning: conditioning,
                           workspace: &workspace, preemption: preemption)
        let per = tail.reduce(1, *)
        var results: [Tensor] = []
        var at = 0
        for b in sizes {
            results.append(Tensor(shape: [b] + tail, scalars: Array(out.scalars[(at * per)..<((at + b) * per)])))
            at += b
        }
        return results
    }
}
