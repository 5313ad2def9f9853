import Foundation
import Testing
@testable import VidrdRuntime

@Suite struct DDIMSchedulerTests {
    @Test(arguments: Fixture.parityConfigs)
    func timestepsMatchDiffusers(config: String) throws {
        let f = try Fixture(config)
        let s = try DDIMScheduler(directory: f.component("scheduler"))
        for n in [2, 7, 25, 50] {
            let expected = try f.reference.integers("scheduler.timesteps_\(n)").map { Int($0) }
            #expect(try s.timesteps(steps: n) == expected, "\(config): \(n) steps")
        }
    }

    @Test(arguments: Fixture.parityConfigs)
    func stepMatchesDiffusers(config: String) throws {
        let f = try Fixture(config)
        let s = try DDIMScheduler(directory: f.component("scheduler"))
        let steps = try #require(f.json["scheduler_steps"] as? [String: [String: Any]])
        for key in ["scheduler.step", "scheduler.last_step", "scheduler.last_step_7"] {
            guard let info = steps[key] else { continue }
            let n = try #require(info["num_inference_steps"] as? Int)
            let t = try #require(info["timestep"] as? Int)
            #expect(s.previousTimestep(t, steps: n) == (try #require(info["prev_timestep"] as? Int)))
            var sample = try f.tensor("\(key).sample")
            s.step(modelOutput: try f.tensor("\(key).model_output"), sample: &sample, timestep: t,
                   previous: s.previousTimestep(t, steps: n))
            let err = relativeError(sample, try f.tensor("\(key).prev_sample"))
            #expect(err < 1e-5, "\(config) \(key): relative error \(err)")
        }
    }

    @Test func rejectsOutOfRangeSteps() throws {
        let s = DDIMScheduler(configuration: .init())
        #expect(throws: ModelError.self) { try s.timesteps(steps: 0) }
        #expect(throws: ModelError.self) { try s.timesteps(steps: 1001) }
    }
}
