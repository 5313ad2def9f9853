/// The text form of a strategy chain, as `vidrd-client --strategy` and `vidrd generate --strategy`
/// take it:
///
///     chain     = strategy *( "," strategy )
///     strategy  = name *( ":" parameter )
///     parameter = name "=" value
///
/// e.g. `fnr,pns:alpha=2,dsg:beta=0.3` or `lfdrift:amount=1.5:period=8`: commas separate
/// strategies, colons separate one strategy's parameters. Spaces around items are ignored. A value
/// is typed as `true`/`false` → bool, a decimal integer → int, another finite number → double,
/// anything else → string (the server accepts an int for a double parameter, docs/PROTOCOL.md §6.8).
///
/// Only syntax and the protocol's hard limits (§4.4, §10) are checked here; whether a strategy or
/// parameter exists is the server's answer (SESSION_OPENED or a session INVALID_ARGUMENT).
extension StrategySpec {
    public static func parseChain(_ text: String) throws(ChainSyntaxError) -> [StrategySpec] {
        let items = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingSpaces() }
        guard !(items.count == 1 && items[0].isEmpty) else {
            throw ChainSyntaxError(token: "", "the chain is empty; name at least one strategy (`none`: fresh noise for every clip)")
        }
        guard items.count <= ProtocolLimits.maxChainLength else {
            throw ChainSyntaxError(token: text, "\(items.count) strategies; a chain holds at most \(ProtocolLimits.maxChainLength)")
        }
        var chain: [StrategySpec] = []
        for (i, item) in items.enumerated() {
            guard !item.isEmpty else { throw ChainSyntaxError(token: item, "strategy \(i + 1) of the chain is empty (two commas in a row?)") }
            let parts = item.split(separator: ":", omittingEmptySubsequences: false).map { $0.trimmingSpaces() }
            let name = parts[0]
            guard isValidName(name) else {
                if name.contains("="), let previous = chain.last {
                    // `a:x=1,y=2`: the comma started a new strategy where a parameter was meant.
                    throw ChainSyntaxError(
                        token: name,
                        "`\(name)` is not a strategy name; parameters of one strategy are separated by `:`, "
                            + "not `,` (did you mean `\(previous.name):…:\(name)`?)")
                }
                throw ChainSyntaxError(token: name, "`\(name)` is not a strategy name (a letter, then letters, digits, `_`, `.` or `-`; at most 64)")
            }
            guard parts.count - 1 <= ProtocolLimits.maxParamsPerStrategy else {
                throw ChainSyntaxError(token: item, "\(name) has \(parts.count - 1) parameters; at most \(ProtocolLimits.maxParamsPerStrategy)")
            }
            var spec = StrategySpec(name: name)
            for p in parts.dropFirst() {
                guard let eq = p.firstIndex(of: "=") else {
                    throw ChainSyntaxError(token: p, "`\(p)` in `\(item)` is not PARAM=VALUE")
                }
                let key = String(p[..<eq]).trimmingSpaces(), value = String(p[p.index(after: eq)...]).trimmingSpaces()
                guard isValidName(key) else { throw ChainSyntaxError(token: p, "`\(key)` in `\(item)` is not a parameter name") }
                guard !spec.params.contains(where: { $0.name == key }) else {
                    throw ChainSyntaxError(token: p, "\(name) names parameter `\(key)` twice")
                }
                guard value.utf8.count <= ProtocolLimits.maxParamStringBytes else {
                    throw ChainSyntaxError(token: p, "the value of \(name):\(key) is over \(ProtocolLimits.maxParamStringBytes) bytes")
                }
                spec.params.append(StrategyParam(key, ParamValue(chainText: value)))
            }
            chain.append(spec)
        }
        return chain
    }

    /// The text form `parseChain` reads back: `name:param=value:…`.
    public var chainText: String {
        params.isEmpty ? name : name + ":" + params.map { "\($0.name)=\($0.value.chainText)" }.joined(separator: ":")
    }
}

extension ParamValue {
    /// Types a value of the text form (see `StrategySpec.parseChain`).
    public init(chainText value: String) {
        if value == "true" || value == "false" {
            self = .bool(value == "true")
        } else if let i = Int64(value) {
            self = .int(i)
        } else if let d = Double(value), d.isFinite {
            self = .double(d)
        } else {
            self = .string(value)
        }
    }

    public var chainText: String {
        switch self {
        case .double(let d): "\(d)"
        case .int(let i): "\(i)"
        case .bool(let b): "\(b)"
        case .string(let s): s
        }
    }
}

/// A strategy chain that is not well formed; `token` is the offending part of the text.
public struct ChainSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    public var token: String
    public var message: String

    public init(token: String, _ message: String) {
        self.token = token
        self.message = message
    }

    public var description: String { message }
}

extension StringProtocol {
    fileprivate func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return String(s)
    }
}
