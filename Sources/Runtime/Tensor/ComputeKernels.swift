import CVidrdKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Which instruction set the runtime's kernels use, chosen once per process at first use.
///
/// The CPU decides (CPUID), so one binary runs on any x86-64 and uses what it finds;
/// `VIDRD_ISA=avx512|avx2|generic` asks for a lower one (tests run the fallbacks that way).
/// A request above what the CPU has is clamped to what it has. `generic` means OpenBLAS.
public struct ComputeKernels: Sendable, Equatable {
    public enum ISA: String, Sendable, CaseIterable, Comparable {
        case generic, avx2, avx512

        var rank: Int { ISA.allCases.firstIndex(of: self) ?? 0 }
        public static func < (lhs: ISA, rhs: ISA) -> Bool { lhs.rank < rhs.rank }
    }

    /// The environment variable that can lower the choice.
    public static let environmentVariable = "VIDRD_ISA"

    /// What the kernels run on in this process.
    public let isa: ISA
    /// The best this CPU supports.
    public let supported: ISA
    /// Set when `VIDRD_ISA` holds something that is not an ISA name, or asks for more than the
    /// CPU has; executables report it as a usage error (`validateEnvironment()`).
    public let problem: String?

    public static let active = ComputeKernels(requested: environmentValue(), supported: cpuSupported)

    /// Fails with a message naming the bad value when `VIDRD_ISA` cannot be honoured.
    public static func validateEnvironment() throws {
        if let problem = active.problem { throw ComputeKernelsError(message: problem) }
    }

    init(requested: String?, supported: ISA) {
        self.supported = supported
        let preferred = ComputeKernels.preferredInThisBuild(supported)
        guard let requested, !requested.isEmpty else {
            (isa, problem) = (preferred, nil)
            return
        }
        let names = ISA.allCases.map(\.rawValue).joined(separator: ", ")
        guard let asked = ISA(rawValue: requested.lowercased()) else {
            (isa, problem) = (preferred, "\(ComputeKernels.environmentVariable)=\(requested) is not one of \(names)")
            return
        }
        if asked > supported {
            (isa, problem) = (supported, "\(ComputeKernels.environmentVariable)=\(requested) asks for more than this CPU has (\(supported.rawValue))")
            return
        }
        (isa, problem) = (asked, nil)
    }

    /// The C kernels' ISA value, nil for the OpenBLAS fallback.
    var kernelISA: vidrd_isa? {
        switch isa {
        case .generic: nil
        case .avx2: VIDRD_ISA_AVX2
        case .avx512: VIDRD_ISA_AVX512
        }
    }

    static let cpuSupported: ISA = {
        switch vidrd_isa_supported() {
        case VIDRD_ISA_AVX512: .avx512
        case VIDRD_ISA_AVX2: .avx2
        default: .generic
        }
    }()

    /// The AVX-512 kernel is written with intrinsics, which run ~40x slower in an unoptimised
    /// (debug) build; there the AVX2 kernel (assembly, the same speed at every level) is the
    /// default. Both compute the identical bits, so the choice changes speed only.
    static func preferredInThisBuild(_ supported: ISA) -> ISA {
        supported == .avx512 && vidrd_kernels_optimized() == 0 ? .avx2 : supported
    }

    private static func environmentValue() -> String? {
        guard let raw = getenv(environmentVariable) else { return nil }
        return String(cString: raw)
    }
}

public struct ComputeKernelsError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
}
