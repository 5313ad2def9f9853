/// Errors raised while reading weight files and model folders. Every message names the file
/// (and the tensor, where one is involved) so that a broken download is easy to locate.
public enum WeightError: Error, CustomStringConvertible, Equatable {
    case cannotOpen(file: String, reason: String)
    case truncated(file: String, detail: String)
    case corruptHeader(file: String, detail: String)
    case badTensor(file: String, tensor: String, detail: String)
    case unsupportedDType(file: String, tensor: String, dtype: String)
    case mismatchedTensors(component: String, missing: [String], unexpected: [String], wrongShape: [String])

    public var description: String {
        switch self {
        case let .cannotOpen(file, reason): return "\(file): cannot open: \(reason)"
        case let .truncated(file, detail): return "\(file): file is truncated: \(detail)"
        case let .corruptHeader(file, detail): return "\(file): corrupt safetensors header: \(detail)"
        case let .badTensor(file, tensor, detail): return "\(file): tensor \"\(tensor)\": \(detail)"
        case let .unsupportedDType(file, tensor, dtype):
            return "\(file): tensor \"\(tensor)\" has unsupported dtype \(dtype) (expected F32, F16 or BF16)"
        case let .mismatchedTensors(component, missing, unexpected, wrongShape):
            var parts: [String] = []
            if !missing.isEmpty { parts.append("missing tensors: " + missing.joined(separator: ", ")) }
            if !unexpected.isEmpty { parts.append("unexpected tensors: " + unexpected.joined(separator: ", ")) }
            if !wrongShape.isEmpty { parts.append("wrong shapes: " + wrongShape.joined(separator: ", ")) }
            return "\(component): weights do not match the config: " + parts.joined(separator: "; ")
        }
    }
}

/// Errors about model configuration and inputs.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case invalidConfig(String)
    case unsupported(String)
    case invalidInput(String)
    case cancelled

    public var description: String {
        switch self {
        case let .invalidConfig(s): return "invalid model config: \(s)"
        case let .unsupported(s): return "unsupported: \(s)"
        case let .invalidInput(s): return "invalid input: \(s)"
        case .cancelled: return "cancelled"
        }
    }
}
