import Testing
import VidrdProtocol

/// `StrategySpec.parseChain`: the text form of a chain (docs/DAEMON.md, "Chains").
@Suite("Chain syntax")
struct ChainSyntaxTests {
    @Test func parsesStrategiesAndTypedParameters() throws {
        let chain = try StrategySpec.parseChain(" fnr, pns:alpha=2:mode=ar , dsg:beta=0.3:on=true,lfdrift:amount=1.5:period=8")
        #expect(
            chain == [
                StrategySpec(name: "fnr"),
                StrategySpec(name: "pns", params: [StrategyParam("alpha", .int(2)), StrategyParam("mode", .string("ar"))]),
                StrategySpec(name: "dsg", params: [StrategyParam("beta", .double(0.3)), StrategyParam("on", .bool(true))]),
                StrategySpec(name: "lfdrift", params: [StrategyParam("amount", .double(1.5)), StrategyParam("period", .int(8))]),
            ])
        #expect(chain.map(\.chainText).joined(separator: ",") == "fnr,pns:alpha=2:mode=ar,dsg:beta=0.3:on=true,lfdrift:amount=1.5:period=8")
        #expect(try StrategySpec.parseChain(chain.map(\.chainText).joined(separator: ",")) == chain)
    }

    func error(_ text: String) -> ChainSyntaxError? {
        do {
            _ = try StrategySpec.parseChain(text)
            return nil
        } catch {
            return error
        }
    }

    @Test func aCommaBetweenParametersNamesTheTokenAndTheFix() throws {
        let e = try #require(error("lfdrift:amount=1.5,period=8"))
        #expect(e.token == "period=8")
        #expect(e.message.contains("separated by `:`") && e.message.contains("lfdrift:…:period=8"), "\(e.message)")
    }

    @Test(arguments: [
        ("", "", "empty"),
        ("fnr,,pns", "", "strategy 2 of the chain is empty"),
        ("9fnr", "9fnr", "not a strategy name"),
        ("pns:alpha", "alpha", "not PARAM=VALUE"),
        ("pns:=2", "=2", "not a parameter name"),
        ("pns:alpha=1:alpha=2", "alpha=2", "twice"),
    ])
    func malformedTextIsRejected(text: String, token: String, message: String) throws {
        let e = try #require(error(text), "\(text) must be rejected")
        #expect(e.token == token && e.message.contains(message), "\(text): \(e)")
    }

    @Test func theProtocolLimitsHold() {
        #expect(error(Array(repeating: "fnr", count: 17).joined(separator: ","))?.message.contains("at most 16") == true)
        #expect(error(Array(repeating: "fnr", count: 16).joined(separator: ",")) == nil)
        let params = (0..<33).map { "p\($0)=1" }.joined(separator: ":")
        #expect(error("pns:" + params)?.message.contains("at most 32") == true)
        #expect(error("pns:s=" + String(repeating: "x", count: 1025))?.message.contains("1024 bytes") == true)
    }
}
