/// Errors of the plugin layer. Descriptions name the strategy, parameter, file and line involved.
public enum PluginError: Error, CustomStringConvertible, Equatable {
    case unknownStrategy(String, known: [String])
    case unknownParameter(strategy: String, parameter: String, known: [String])
    case invalidParameter(strategy: String, parameter: String, reason: String)
    case invalidConfiguration(String)
    case conflict(String)
    case strategyFailed(strategy: String, reason: String)
    /// plugins.conf: `file:line: what is wrong`.
    case config(file: String, line: Int, message: String)
    case library(path: String, reason: String)

    public var description: String {
        switch self {
        case let .unknownStrategy(name, known):
            return "unknown strategy \"\(name)\" (registered: \(known.joined(separator: ", ")))"
        case let .unknownParameter(s, p, known):
            return "strategy \"\(s)\" has no parameter \"\(p)\"" + (known.isEmpty ? " (it takes none)" : " (it takes: \(known.joined(separator: ", ")))")
        case let .invalidParameter(s, p, reason):
            return "strategy \"\(s)\", parameter \"\(p)\": \(reason)"
        case let .invalidConfiguration(s):
            return "invalid stream configuration: \(s)"
        case let .conflict(s):
            return "strategy conflict: \(s)"
        case let .strategyFailed(s, reason):
            return "strategy \"\(s)\" failed: \(reason)"
        case let .config(file, line, message):
            return "\(file):\(line): \(message)"
        case let .library(path, reason):
            return "plugin library \(path): \(reason)"
        }
    }
}
