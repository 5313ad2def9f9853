import Foundation

/// `plugins.conf`: which strategies exist for sessions, the default chain and its parameters, and
/// the external plugin libraries. One directive per line, `#` starts a comment:
///
///     library PATH                  dlopen a plugin library (relative paths: from this file's folder)
///     enable NAME [NAME ...]        strategies sessions may name (repeatable; absent = all registered)
///     chain NAME [NAME ...]         the default chain, in order (commas also separate; once)
///     set NAME.PARAM = VALUE        a parameter's default
///     emit all|new                  the default emission mode (once)
///     prompt-frames M               the default number of prompt frames (once)
///
/// Every error reads `file:line: what is wrong`.
public struct PluginsConf: Sendable {
    public struct Located<T: Sendable>: Sendable {
        public let value: T
        public let line: Int
    }

    public let file: String
    public var libraries: [Located<String>] = []
    public var enabled: [Located<String>] = []
    public var chain: Located<[String]>?
    public var settings: [Located<(strategy: String, parameter: String, value: String)>] = []
    public var emission: Located<EmissionMode>?
    public var promptFrames: Located<Int>?

    public init(file: String) { self.file = file }

    public static func parse(_ text: String, file: String) throws -> PluginsConf {
        var conf = PluginsConf(file: file)
        let base = URL(fileURLWithPath: file).deletingLastPathComponent()
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = i + 1
            func fail(_ m: String) -> PluginError { .config(file: file, line: line, message: m) }
            var content = String(raw)
            if let hash = content.firstIndex(of: "#") { content = String(content[..<hash]) }
            content = content.trimmingCharacters(in: .whitespacesAndNewlines)
            if content.isEmpty { continue }
            let words = content.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            let keyword = words[0], rest = Array(words.dropFirst())
            let restText = content.dropFirst(keyword.count).trimmingCharacters(in: .whitespaces)
            switch keyword {
            case "library":
                guard !restText.isEmpty else { throw fail("library needs a path") }
                let path = restText.hasPrefix("/") ? restText : base.appendingPathComponent(restText).standardizedFileURL.path
                conf.libraries.append(Located(value: path, line: line))
            case "enable":
                let names = restText.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }).map(String.init)
                guard !names.isEmpty else { throw fail("enable needs at least one strategy name") }
                conf.enabled += names.map { Located(value: $0, line: line) }
            case "chain":
                guard conf.chain == nil else { throw fail("a second chain line (the first is line \(conf.chain!.line))") }
                let names = restText.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }).map(String.init)
                guard !names.isEmpty else { throw fail("chain needs at least one strategy name (\"none\" for the baseline)") }
                conf.chain = Located(value: names, line: line)
            case "set":
                let parts = restText.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                let lhs: String, value: String
                if parts.count == 2 {
                    (lhs, value) = (parts[0], parts[1])
                } else if rest.count == 2 {
                    (lhs, value) = (rest[0], rest[1])
                } else {
                    throw fail("expected \"set STRATEGY.PARAMETER = VALUE\"")
                }
                let dotted = lhs.split(separator: ".", maxSplits: 1).map(String.init)
                guard dotted.count == 2, !dotted[0].isEmpty, !dotted[1].isEmpty else {
                    throw fail("expected STRATEGY.PARAMETER before \"=\", got \"\(lhs)\"")
                }
                guard !value.isEmpty else { throw fail("set \(lhs): missing value") }
                conf.settings.append(Located(value: (dotted[0], dotted[1], value), line: line))
            case "emit":
                guard conf.emission == nil else { throw fail("a second emit line (the first is line \(conf.emission!.line))") }
                guard rest.count == 1, let mode = EmissionMode(rawValue: rest[0]) else {
                    throw fail("emit takes \"all\" or \"new\", got \"\(restText)\"")
                }
                conf.emission = Located(value: mode, line: line)
            case "prompt-frames":
                guard conf.promptFrames == nil else { throw fail("a second prompt-frames line (the first is line \(conf.promptFrames!.line))") }
                guard rest.count == 1, let m = Int(rest[0]), m >= 0, m <= StreamConfiguration.maxFrames else {
                    throw fail("prompt-frames takes an integer in 0...\(StreamConfiguration.maxFrames), got \"\(restText)\"")
                }
                conf.promptFrames = Located(value: m, line: line)
            default:
                throw fail("unknown directive \"\(keyword)\" (expected library, enable, chain, set, emit or prompt-frames)")
            }
        }
        return conf
    }

    /// Applies this file to `base`: loads the libraries, then checks every name and value.
    public func apply(to base: StrategyRegistry) throws -> StrategyRegistry {
        var r = base
        func wrap<T>(_ line: Int, _ body: () throws -> T) throws -> T {
            do { return try body() } catch let e as PluginError {
                if case .config = e { throw e }
                throw PluginError.config(file: file, line: line, message: e.description)
            }
        }
        for lib in libraries { try wrap(lib.line) { _ = try r.loadLibrary(path: lib.value) } }
        for s in settings {
            try wrap(s.line) { try r.setDefault(strategy: s.value.strategy, parameter: s.value.parameter, value: .string(s.value.value)) }
        }
        if !enabled.isEmpty {
            for e in enabled where !r.registeredNames.contains(e.value) {
                throw PluginError.config(file: file, line: e.line, message: "enable: unknown strategy \"\(e.value)\" (registered: \(r.registeredNames.joined(separator: ", ")))")
            }
            var seen = Set<String>()
            try r.enable(only: enabled.map(\.value).filter { seen.insert($0).inserted })
        }
        if let chain {
            for n in chain.value where !r.isEnabled(n) {
                throw PluginError.config(file: file, line: chain.line, message: "chain: strategy \"\(n)\" is not " + (r.registeredNames.contains(n) ? "enabled" : "registered"))
            }
            r.defaultChain = chain.value.map { StrategySpec(name: $0) }
        }
        if let emission { r.defaultEmission = emission.value }
        if let promptFrames { r.defaultPromptFrames = promptFrames.value }
        // The default chain must compose (checked with a representative clip shape).
        let m = r.defaultPromptFrames
        let shape = ClipShape(frames: Swift.max(16, m + 1), channels: 4, height: 1, width: 1, promptFrames: m, steps: 50)
        var chainCaps: [(name: String, capabilities: StrategyCapabilities)] = []
        try wrap(chain?.line ?? 0) {
            for spec in r.defaultChain { chainCaps.append((spec.name, try r.make(spec).capabilities)) }
            try VideoStream.checkComposition(chainCaps, shape: shape)
        }
        return r
    }
}

extension StrategyRegistry {
    /// The built-ins plus everything `plugins.conf` at `path` says. Errors read `file:line: …`.
    public static func load(conf path: String, base: StrategyRegistry = .builtIn()) throws -> StrategyRegistry {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw PluginError.config(file: path, line: 0, message: "cannot read: \(error.localizedDescription)")
        }
        return try PluginsConf.parse(text, file: path).apply(to: base)
    }
}

extension StrategySpec {
    /// Parses `fnr,pns:alpha=2,dsg:beta=0.3` (the command line and client syntax): strategies
    /// separated by commas, each optionally followed by `:PARAM=VALUE` pairs. Values stay text
    /// until the registry checks them against the parameter's kind.
    public static func parseList(_ text: String) throws -> [StrategySpec] {
        var out: [StrategySpec] = []
        for item in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            let parts = item.split(separator: ":").map(String.init)
            var spec = StrategySpec(name: parts[0])
            for p in parts.dropFirst() {
                let kv = p.split(separator: "=", maxSplits: 1).map(String.init)
                guard kv.count == 2, !kv[0].isEmpty else {
                    throw PluginError.invalidParameter(strategy: parts[0], parameter: p, reason: "expected PARAM=VALUE")
                }
                spec.parameters[kv[0]] = .string(kv[1])
            }
            out.append(spec)
        }
        guard !out.isEmpty else { throw PluginError.invalidConfiguration("empty strategy list") }
        return out
    }
}
