import Foundation
import VidrdRuntime

/// What a client can list about a registered strategy.
public struct StrategyInfo: Sendable {
    public let name: String
    public let summary: String
    public let parameters: [ParameterInfo]
    /// "built-in", or the path of the plugin library that registered it.
    public let origin: String

    public init(name: String, summary: String, parameters: [ParameterInfo], origin: String = "built-in") {
        self.name = name
        self.summary = summary
        self.parameters = parameters
        self.origin = origin
    }

    func withParameters(_ p: [ParameterInfo]) -> StrategyInfo {
        StrategyInfo(name: name, summary: summary, parameters: p, origin: origin)
    }
}

/// The strategies a stream may name: the built-ins, those of external plugin libraries, and the
/// defaults of `plugins.conf`.
public struct StrategyRegistry: Sendable {
    /// A registered strategy: its description and how to make an instance from validated parameters.
    public struct Entry: Sendable {
        public var info: StrategyInfo
        public var make: @Sendable (StrategyParameters) throws -> any NoiseStrategy
        public init(info: StrategyInfo, make: @escaping @Sendable (StrategyParameters) throws -> any NoiseStrategy) {
            self.info = info
            self.make = make
        }
    }

    /// The paper's chain: what code that embeds `VideoStream` without a plugins.conf gets, so that
    /// it keeps the paper's (reproducible) behaviour. The committed plugins.conf names fifo, the
    /// measured choice for viewers (docs/PLUGINS.md, "Choosing the default").
    public static let builtInDefaultChain = [StrategySpec(name: "fnr"), StrategySpec(name: "pns"), StrategySpec(name: "dsg")]
    /// Chosen by the seam measurement in docs/PLUGINS.md.
    public static let builtInDefaultEmission = EmissionMode.all
    public static let builtInDefaultPromptFrames = 4

    private var entries: [String: Entry] = [:]
    private var order: [String] = []
    /// Names sessions may use; nil = all registered.
    public private(set) var enabled: [String]? = nil
    /// The chain a session gets when it names none.
    public var defaultChain: [StrategySpec] = StrategyRegistry.builtInDefaultChain
    public var defaultEmission: EmissionMode = StrategyRegistry.builtInDefaultEmission
    public var defaultPromptFrames: Int = StrategyRegistry.builtInDefaultPromptFrames
    /// External libraries loaded into this registry.
    public private(set) var libraries: [PluginLibrary] = []

    public init() {}

    /// none, fnr, pns, dsg, pyoco with the paper's defaults.
    public static func builtIn() -> StrategyRegistry {
        var r = StrategyRegistry()
        for e in builtInEntries { try! r.register(e) }
        return r
    }

    /// Registered and enabled strategies, in registration order.
    public var strategies: [StrategyInfo] {
        order.filter { isEnabled($0) }.map { entries[$0]!.info }
    }

    /// Every registered name, enabled or not.
    public var registeredNames: [String] { order }

    public func isEnabled(_ name: String) -> Bool {
        entries[name] != nil && (enabled?.contains(name) ?? true)
    }

    public func info(named name: String) -> StrategyInfo? { isEnabled(name) ? entries[name]!.info : nil }

    /// Adds a strategy; a name may be registered once. A strategy registered after `enable(only:)`
    /// (i.e. by code, after plugins.conf) is enabled too.
    public mutating func register(_ entry: Entry) throws {
        let name = entry.info.name
        guard Self.isValidName(name) else {
            throw PluginError.invalidConfiguration("strategy name \"\(name)\" must be 1–64 characters of a-z, 0-9, _ and -, starting with a letter")
        }
        if let existing = entries[name] {
            throw PluginError.conflict("strategy \"\(name)\" from \(entry.info.origin) is already registered by \(existing.info.origin)")
        }
        var names = Set<String>()
        for p in entry.info.parameters {
            guard names.insert(p.name).inserted else {
                throw PluginError.invalidConfiguration("strategy \"\(name)\" declares parameter \"\(p.name)\" twice")
            }
            if case .failure(let reason) = p.validate(p.defaultValue) {
                throw PluginError.invalidParameter(strategy: name, parameter: p.name, reason: "default: \(reason.reason)")
            }
        }
        entries[name] = entry
        order.append(name)
        if enabled != nil { enabled!.append(name) }
    }

    public mutating func register(_ info: StrategyInfo, make: @escaping @Sendable (StrategyParameters) throws -> any NoiseStrategy) throws {
        try register(Entry(info: info, make: make))
    }

    static func isValidName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, ("a"..."z").contains(first), s.unicodeScalars.count <= 64 else { return false }
        return s.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-" }
    }

    /// Restricts the names sessions may use (plugins.conf `enable`).
    public mutating func enable(only names: [String]) throws {
        for n in names where entries[n] == nil { throw PluginError.unknownStrategy(n, known: order) }
        enabled = names
    }

    /// Changes a parameter's default (plugins.conf `set`).
    public mutating func setDefault(strategy: String, parameter: String, value: ParameterValue) throws {
        guard var e = entries[strategy] else { throw PluginError.unknownStrategy(strategy, known: order) }
        guard let i = e.info.parameters.firstIndex(where: { $0.name == parameter }) else {
            throw PluginError.unknownParameter(strategy: strategy, parameter: parameter, known: e.info.parameters.map(\.name))
        }
        var params = e.info.parameters
        switch params[i].validate(value) {
        case .success(let v): params[i] = params[i].withDefault(v)
        case .failure(let reason): throw PluginError.invalidParameter(strategy: strategy, parameter: parameter, reason: reason.reason)
        }
        e.info = e.info.withParameters(params)
        entries[strategy] = e
    }

    /// Validates a spec: the strategy is enabled, every parameter exists and is typed and in range;
    /// missing parameters take their defaults.
    public func resolve(_ spec: StrategySpec) throws -> StrategyParameters {
        guard let info = info(named: spec.name) else { throw PluginError.unknownStrategy(spec.name, known: strategies.map(\.name)) }
        var values: [String: ParameterValue] = [:]
        for p in info.parameters { values[p.name] = p.defaultValue }
        for (name, value) in spec.parameters.sorted(by: { $0.key < $1.key }) {
            guard let p = info.parameters.first(where: { $0.name == name }) else {
                throw PluginError.unknownParameter(strategy: spec.name, parameter: name, known: info.parameters.map(\.name))
            }
            switch p.validate(value) {
            case .success(let v): values[name] = v
            case .failure(let reason): throw PluginError.invalidParameter(strategy: spec.name, parameter: name, reason: reason.reason)
            }
        }
        return StrategyParameters(values)
    }

    /// A fresh instance for one stream.
    public func make(_ spec: StrategySpec) throws -> any NoiseStrategy {
        let params = try resolve(spec)
        do {
            return try entries[spec.name]!.make(params)
        } catch let e as PluginError {
            throw e
        } catch {
            throw PluginError.strategyFailed(strategy: spec.name, reason: "\(error)")
        }
    }

    mutating func addLibrary(_ library: PluginLibrary) { libraries.append(library) }
}
