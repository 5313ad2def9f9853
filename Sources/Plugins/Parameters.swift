import Foundation

/// A strategy parameter's value.
public enum ParameterValue: Sendable, Equatable, CustomStringConvertible {
    case double(Double), int(Int), bool(Bool), string(String)

    public var kind: String {
        switch self {
        case .double: return "double"
        case .int: return "int"
        case .bool: return "bool"
        case .string: return "string"
        }
    }

    public var description: String {
        switch self {
        case let .double(d): return "\(d)"
        case let .int(i): return "\(i)"
        case let .bool(b): return "\(b)"
        case let .string(s): return s
        }
    }

    /// Parses text (plugins.conf, command line, wire) as a value of `kind`.
    public static func parse(_ text: String, kind: String) -> ParameterValue? {
        let t = text.trimmingCharacters(in: .whitespaces)
        switch kind {
        case "double": return Double(t).flatMap { $0.isFinite ? .double($0) : nil }
        case "int": return Int(t).map { .int($0) }
        case "bool":
            switch t.lowercased() {
            case "true", "yes", "on", "1": return .bool(true)
            case "false", "no", "off", "0": return .bool(false)
            default: return nil
            }
        case "string": return .string(t)
        default: return nil
        }
    }
}

/// A strategy named in a chain, with parameter values that override its defaults.
public struct StrategySpec: Sendable, Equatable {
    public var name: String
    public var parameters: [String: ParameterValue]
    public init(name: String, parameters: [String: ParameterValue] = [:]) {
        self.name = name
        self.parameters = parameters
    }
}

/// A typed parameter with its default and, for numbers, an inclusive range.
public struct ParameterInfo: Sendable {
    public let name: String
    /// "double" | "int" | "bool" | "string"
    public let kind: String
    public let defaultValue: ParameterValue
    public let help: String
    public let minimum: Double?
    public let maximum: Double?

    public init(name: String, kind: String, defaultValue: ParameterValue, help: String,
                minimum: Double? = nil, maximum: Double? = nil) {
        self.name = name
        self.kind = kind
        self.defaultValue = defaultValue
        self.help = help
        self.minimum = minimum
        self.maximum = maximum
    }

    public static func double(_ name: String, _ value: Double, _ help: String, min: Double? = nil, max: Double? = nil) -> ParameterInfo {
        ParameterInfo(name: name, kind: "double", defaultValue: .double(value), help: help, minimum: min, maximum: max)
    }
    public static func int(_ name: String, _ value: Int, _ help: String, min: Double? = nil, max: Double? = nil) -> ParameterInfo {
        ParameterInfo(name: name, kind: "int", defaultValue: .int(value), help: help, minimum: min, maximum: max)
    }

    /// Checks `value` against kind and range; ints are accepted for doubles. Returns the value
    /// in this parameter's kind, or a reason.
    public func validate(_ value: ParameterValue) -> Result<ParameterValue, InvalidParameterValue> {
        var v = value
        if kind == "double", case let .int(i) = value { v = .double(Double(i)) }
        if case let .string(s) = value, kind != "string" {
            guard let parsed = ParameterValue.parse(s, kind: kind) else { return .failure(InvalidParameterValue("\"\(s)\" is not \(kind.withArticle)")) }
            v = parsed
        }
        guard v.kind == kind else {
            return .failure(InvalidParameterValue("expects \(kind.withArticle), got \(value.kind.withArticle) (\(value))"))
        }
        let number: Double?
        switch v {
        case let .double(d): number = d
        case let .int(i): number = Double(i)
        default: number = nil
        }
        if let number {
            guard number.isFinite else { return .failure(InvalidParameterValue("must be finite, got \(number)")) }
            if let minimum, number < minimum { return .failure(InvalidParameterValue("must be ≥ \(minimum.cleanDescription), got \(v)")) }
            if let maximum, number > maximum { return .failure(InvalidParameterValue("must be ≤ \(maximum.cleanDescription), got \(v)")) }
        }
        return .success(v)
    }

    /// The same parameter with another default (plugins.conf `set` lines).
    public func withDefault(_ value: ParameterValue) -> ParameterInfo {
        ParameterInfo(name: name, kind: kind, defaultValue: value, help: help, minimum: minimum, maximum: maximum)
    }
}

/// Why a value does not fit a parameter.
public struct InvalidParameterValue: Error, Sendable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

extension String {
    /// "an int", "a double": kind names in messages.
    var withArticle: String { (first.map { "aeiou".contains($0) } ?? false ? "an " : "a ") + self }
}

extension Double {
    var cleanDescription: String { self == rounded() && abs(self) < 1e15 ? String(Int(self)) : "\(self)" }
}

/// A strategy's resolved parameters: every declared parameter present, typed and in range.
public struct StrategyParameters: Sendable, Equatable {
    public let values: [String: ParameterValue]
    public init(_ values: [String: ParameterValue]) { self.values = values }

    public func double(_ name: String) -> Double {
        switch values[name] {
        case let .double(d)?: return d
        case let .int(i)?: return Double(i)
        default: preconditionFailure("parameter \(name) is not a number")
        }
    }
    public func int(_ name: String) -> Int {
        guard case let .int(i)? = values[name] else { preconditionFailure("parameter \(name) is not an int") }
        return i
    }
    public func bool(_ name: String) -> Bool {
        guard case let .bool(b)? = values[name] else { preconditionFailure("parameter \(name) is not a bool") }
        return b
    }
    public func string(_ name: String) -> String {
        guard case let .string(s)? = values[name] else { preconditionFailure("parameter \(name) is not a string") }
        return s
    }
}
