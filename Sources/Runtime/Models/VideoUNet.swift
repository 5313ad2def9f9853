import Foundation

/// A model folder's denoising U-Net, by family: diffusers' `UNet3DConditionModel` (ModelScope
/// layout) or the VidRD authors' own (`ReuseAndDiffuse.UNet3DConditionModel`). Both classes are
/// called `UNet3DConditionModel` upstream, so `unet/config.json`'s `_vidrd_family` decides
/// (absent: diffusers).
public enum VideoUNet: Sendable {
    case diffusers(UNet3DConditionModel)
    case reuseAndDiffuse(ReuseAndDiffuse.UNet3DConditionModel)

    public static let familyKey = "_vidrd_family"

    public init(directory: URL, precision: ComputePrecision = .fp32, storage: WeightStorage = .checkpoint) throws {
        let config = try ModelConfig(path: directory.appendingPathComponent("config.json").path)
        let family = try config.string(Self.familyKey, default: "diffusers")
        switch family {
        case "diffusers": self = .diffusers(try UNet3DConditionModel(directory: directory, precision: precision, storage: storage))
        case ReuseAndDiffuse.familyName:
            self = .reuseAndDiffuse(try ReuseAndDiffuse.UNet3DConditionModel(directory: directory, precision: precision, storage: storage))
        default:
            throw ModelError.unsupported("\(config.path): \(Self.familyKey) \"\(family)\" (known: diffusers, \(ReuseAndDiffuse.familyName))")
        }
    }

    public var familyName: String {
        switch self {
        case .diffusers: return "diffusers"
        case .reuseAndDiffuse: return ReuseAndDiffuse.familyName
        }
    }

    public var inChannels: Int {
        switch self {
        case .diffusers(let u): return u.configuration.inChannels
        case .reuseAndDiffuse(let u): return u.configuration.inChannels
        }
    }

    public var crossAttentionDim: Int {
        switch self {
        case .diffusers(let u): return u.configuration.crossAttentionDim
        case .reuseAndDiffuse(let u): return u.configuration.crossAttentionDim
        }
    }

    public var sampleSize: Int? {
        switch self {
        case .diffusers(let u): return u.configuration.sampleSize
        case .reuseAndDiffuse(let u): return u.configuration.sampleSize
        }
    }

    public func conditioning(encoderHiddenStates e: Tensor) throws -> UNet3DConditionModel.TextConditioning {
        switch self {
        case .diffusers(let u): return try u.conditioning(encoderHiddenStates: e)
        case .reuseAndDiffuse(let u): return try u.conditioning(encoderHiddenStates: e)
        }
    }

    /// `preemption`: see `UNet3DConditionModel.callAsFunction`; the authors' U-Net offers no
    /// preemption points yet (it is called straight through).
    public func callAsFunction(_ sample: Tensor, timesteps: [Float], conditioning: UNet3DConditionModel.TextConditioning,
                               workspace: inout Workspace, preemption: ((Double) -> Void)? = nil) throws -> Tensor {
        switch self {
        case .diffusers(let u):
            return try u(sample, timesteps: timesteps, conditioning: conditioning, workspace: &workspace, preemption: preemption)
        case .reuseAndDiffuse(let u): return try u(sample, timesteps: timesteps, conditioning: conditioning, workspace: &workspace)
        }
    }
}
