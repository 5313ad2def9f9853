// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "vidrd",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "VidrdRuntime", targets: ["VidrdRuntime"]),
        .library(name: "VidrdProtocol", targets: ["VidrdProtocol"]),
        .library(name: "VidrdClient", targets: ["VidrdClient"]),
        .executable(name: "vidrd-daemon", targets: ["vidrd-daemon"]),
        .executable(name: "vidrd-client", targets: ["vidrd-client"]),
        .executable(name: "vidrd", targets: ["vidrd"]),
        // The browser viewer's gateway (docs/DAEMON.md "Web viewer"); the only products that use hummingbird.
        .executable(name: "vidrd-viewer", targets: ["vidrd-viewer"]),
        // The example C noise-strategy plugin (docs/PLUGINS.md), loaded by the plugin tests.
        .library(name: "VidrdExamplePlugin", type: .dynamic, targets: ["VidrdExamplePlugin"]),
        .library(name: "VidrdExamplePluginSwift", type: .dynamic, targets: ["VidrdExamplePluginSwift"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.0.0"),
        // The daemon's /metrics registry and exposition; only VidrdDaemon uses it (no library product does).
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        // SHA-256 and HMAC for continuation tokens and the model's fingerprint; only VidrdDaemon uses it.
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
    ],
    targets: [
        // System libraries, each wrapped by a module map and found through pkg-config.
        .systemLibrary(
            name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(
            name: "CUV", path: "Sources/CUV", pkgConfig: "libuv",
            providers: [.apt(["libuv1-dev"])]),
        .systemLibrary(
            name: "CWebP", path: "Sources/CWebP", pkgConfig: "libwebpmux libwebpdemux libwebp",
            providers: [.apt(["libwebp-dev"])]),

        .target(name: "VidrdProtocol", path: "Sources/Protocol"),
        // Which session's step runs next (fair queuing over steps, batch formation): pure, no I/O.
        .target(name: "VidrdScheduling", path: "Sources/Scheduling"),
        // The runtime's GEMM and element-wise kernels (AVX2, AVX-512, portable), chosen per CPU at run time.
        .target(name: "CVidrdKernels", path: "Sources/CVidrdKernels"),
        // No CPU or unchecked-arithmetic flags: the hot loops are C kernels chosen by CPUID
        // (CVidrdKernels), so the product runs on any x86-64 and other packages may depend on it.
        .target(name: "VidrdRuntime", dependencies: ["CBLAS", "CVidrdKernels"], path: "Sources/Runtime"),
        .target(name: "VidrdMedia", dependencies: ["CWebP"], path: "Sources/Media"),
        .target(name: "CVidrdPlugin", path: "Sources/CVidrdPlugin"),
        .target(name: "VidrdPlugins", dependencies: ["VidrdRuntime", "CVidrdPlugin"], path: "Sources/Plugins"),
        .target(name: "VidrdExamplePlugin", dependencies: ["CVidrdPlugin"], path: "Examples/ExamplePluginC"),
        .target(name: "VidrdExamplePluginSwift", dependencies: ["CVidrdPlugin"], path: "Examples/ExamplePluginSwift"),
        .target(
            name: "VidrdDaemon",
            dependencies: [
                "VidrdProtocol", "VidrdRuntime", "VidrdPlugins", "VidrdMedia", "VidrdScheduling", "CUV",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Sources/Daemon"),
        .target(name: "VidrdClient", dependencies: ["VidrdProtocol"], path: "Sources/Client"),
        // The web viewer's gateway: HTTP + WebSocket (hummingbird) in front of VidrdClient sessions.
        .target(
            name: "VidrdGateway",
            dependencies: [
                "VidrdClient", "VidrdProtocol",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
            ],
            path: "Sources/Gateway"),
        // Long-video metrics (vidrd longeval, vidrd seams): pure functions of decoded frames.
        .target(name: "VidrdEval", dependencies: ["VidrdRuntime"], path: "Sources/Eval"),

        .executableTarget(
            name: "vidrd-daemon",
            dependencies: [
                "VidrdDaemon",
                "VidrdRuntime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/vidrd-daemon"),
        .executableTarget(
            name: "vidrd-client",
            dependencies: [
                "VidrdClient", "VidrdMedia",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/vidrd-client"),
        .executableTarget(
            name: "vidrd",
            dependencies: [
                "VidrdRuntime", "VidrdPlugins", "VidrdMedia", "VidrdEval",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/vidrd"),

        .executableTarget(
            name: "vidrd-viewer",
            dependencies: [
                "VidrdGateway",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/vidrd-viewer"),

        // docs/DAEMON.md's client library example (run by DaemonTests against a daemon).
        .executableTarget(name: "vidrd-client-example", dependencies: ["VidrdClient"], path: "Examples/ClientExample"),

        .executableTarget(
            name: "vidrd-bench",
            dependencies: ["VidrdRuntime", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Sources/vidrd-bench"),

        .testTarget(name: "RuntimeTests", dependencies: ["VidrdRuntime", "CVidrdKernels"], path: "Tests/RuntimeTests"),
        .testTarget(name: "MediaTests", dependencies: ["VidrdMedia"], path: "Tests/MediaTests"),
        .testTarget(name: "PluginsTests", dependencies: ["VidrdPlugins", "VidrdRuntime"], path: "Tests/PluginsTests"),
        .testTarget(name: "EvalTests", dependencies: ["VidrdEval", "VidrdRuntime", "VidrdMedia"], path: "Tests/EvalTests"),
        .testTarget(name: "ProtocolTests", dependencies: ["VidrdProtocol"], path: "Tests/ProtocolTests"),
        .testTarget(name: "SchedulingTests", dependencies: ["VidrdScheduling"], path: "Tests/SchedulingTests"),
        .testTarget(
            name: "DaemonTests",
            dependencies: ["VidrdDaemon", "VidrdClient", "VidrdProtocol", "VidrdMedia", "VidrdPlugins", "VidrdRuntime"],
            path: "Tests/DaemonTests"),
        // The web viewer against a real daemon, and headless Chromium against the viewer.
        .testTarget(
            name: "GatewayTests",
            dependencies: [
                "VidrdGateway", "VidrdDaemon", "VidrdClient", "VidrdProtocol", "VidrdMedia", "VidrdPlugins",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
            ],
            path: "Tests/GatewayTests"),
    ]
)
