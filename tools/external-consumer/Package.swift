// swift-tools-version:6.0
// A package outside vidrd that depends on it the way other tools do: by URL and version. It
// exists to prove the library products carry no unsafe build flags (SwiftPM refuses such
// products from a versioned dependency). `bash tools/external-consumer/check.sh` tags a clone
// of the repository and builds this package against it.
import Foundation
import PackageDescription

let vidrd = ProcessInfo.processInfo.environment["VIDRD_PACKAGE_URL"] ?? "https://github.com/vidrd/vidrd"

let package = Package(
    name: "external-consumer",
    platforms: [.macOS(.v14)],
    dependencies: [.package(url: vidrd, from: "1.0.0")],
    targets: [
        .executableTarget(
            name: "Consumer",
            dependencies: [
                .product(name: "VidrdRuntime", package: "vidrd"),
                .product(name: "VidrdClient", package: "vidrd"),
                .product(name: "VidrdProtocol", package: "vidrd"),
            ],
            path: "Sources/Consumer"),
    ]
)
