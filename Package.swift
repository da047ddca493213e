// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Parley",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "ParleyAMQP", targets: ["ParleyAMQP"]),
        .library(name: "ParleyPostgres", targets: ["ParleyPostgres"]),
        .library(name: "ParleyMessaging", targets: ["ParleyMessaging"]),
        .library(name: "ParleyCanonical", targets: ["ParleyCanonical"]),
        .library(name: "ParleyMapping", targets: ["ParleyMapping"]),
        .library(name: "ParleyLink", targets: ["ParleyLink"]),
        .library(name: "ParleyObservability", targets: ["ParleyObservability"]),
        .executable(name: "parley-bench", targets: ["parley-bench"]),
        .executable(name: "parley", targets: ["parley"]),
        .executable(name: "mapping-service", targets: ["mapping-service"]),
        .executable(name: "link-service", targets: ["link-service"]),
        .executable(name: "customerp-adapter", targets: ["customerp-adapter"]),
        .executable(name: "customwebshop-adapter", targets: ["customwebshop-adapter"]),
        .executable(name: "powerofficego-adapter", targets: ["powerofficego-adapter"]),
        .library(name: "ParleySimulator", targets: ["ParleySimulator"]),
        .executable(name: "customerp-simulator", targets: ["customerp-simulator"]),
        .executable(name: "customwebshop-simulator", targets: ["customwebshop-simulator"]),
        .executable(name: "powerofficego-simulator", targets: ["powerofficego-simulator"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        // SHA-256 and HMAC (already in the graph: swift-nio-extras and swift-certificates use it).
        .package(url: "https://github.com/apple/swift-crypto", from: "4.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        // HTTP: the simulators serve the systems' contracts, the adapters call them.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        // Monitoring: the metrics API the shared choke points record into, and the Prometheus
        // backend the services' /metrics endpoint renders.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.0")
    ],
    targets: [
        // C libraries, through pkg-config. The shim header also carries the small inline
        // wrappers Swift needs (amqp_login is variadic).
        .systemLibrary(
            name: "CRabbitMQ", path: "Shared/CRabbitMQ", pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"])]),
        .systemLibrary(
            name: "CLibPQ", path: "Shared/CLibPQ", pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]),

        .target(
            name: "ParleyAMQP",
            dependencies: [
                "CRabbitMQ", "ParleyCore", .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics")
            ],
            path: "Shared/ParleyAMQP"),
        // Small pieces more than one library needs (hashes through swift-crypto).
        .target(name: "ParleyCore", dependencies: [.product(name: "Crypto", package: "swift-crypto")], path: "Shared/ParleyCore"),
        .target(
            name: "ParleyPostgres",
            dependencies: ["CLibPQ", "ParleyCore", .product(name: "Logging", package: "swift-log")],
            path: "Shared/ParleyPostgres",
            resources: []),
        // Pure: JSON values, their parser and serializer.
        .target(name: "ParleyJSON", dependencies: ["ParleyCore"], path: "Shared/ParleyJSON"),
        // Pure: the message envelope every Parley message carries, and its fields.
        .target(name: "ParleyEnvelope", dependencies: ["ParleyCore", "ParleyJSON"], path: "Shared/ParleyEnvelope"),
        // The envelope on the broker: consumers, topology, messaging metrics.
        .target(
            name: "ParleyMessaging",
            dependencies: [
                "ParleyAMQP", "ParleyCore", "ParleyJSON", "ParleyEnvelope",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "CoreMetrics", package: "swift-metrics")
            ],
            path: "Shared/ParleyMessaging"),

        // Monitoring every long-running service serves: /health/live, /health/ready and
        // /metrics (Prometheus text) on its own port, and the metrics bootstrap.
        .target(
            name: "ParleyObservability",
            dependencies: [
                "ParleyAMQP", "ParleyPostgres",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
            ],
            path: "Shared/ParleyObservability"),
        .testTarget(
            name: "ParleyObservabilityTests",
            dependencies: [
                "ParleyEnvelope", "ParleyJSON",
                "ParleyObservability", "ParleyAMQP", "ParleyPostgres", "ParleyMessaging", "ParleyCanonical", "ParleyTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Metrics", package: "swift-metrics")
            ],
            path: "Tests/ParleyObservabilityTests"),

        // The canonical model of Customer, Product and Order, natural keys, the canonical hash
        // and the converters the mapping tables name.
        .target(
            name: "ParleyCanonical",
            dependencies: ["ParleyCore", "ParleyJSON", "ParleyEnvelope"],
            path: "Shared/ParleyCanonical"),

        // The mapping tables (mappings/<system>/<entity>.yaml): loaded and validated against
        // the systems' OpenAPI contracts, the canonical fields and the converters.
        .target(
            name: "ParleyMapping",
            dependencies: [
                "ParleyCanonical", "ParleyJSON", "ParleyEnvelope", .product(name: "Yams", package: "Yams")
            ],
            path: "Shared/ParleyMapping"),
        // The mapping service on the broker: its two consumers around MappingProcessor.
        .target(
            name: "ParleyMappingService",
            dependencies: [
                "ParleyEnvelope",
                "ParleyMapping", "ParleyMessaging", "ParleyAMQP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
            ],
            path: "Shared/ParleyMappingService"),

        .executableTarget(
            name: "parley-bench",
            dependencies: [
                "ParleyAMQP", "CRabbitMQ", "ParleyMapping", "ParleyMessaging", "ParleyLink", "ParleyLinkCore", "ParleyPostgres", "ParleyEnvelope",
                "ParleyJSON",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
            ],
            path: "Services/parley-bench"),

        // Pure: the link service's rules (LinkRules: one message's decisions as effects on a
        // store it reads through LinkStoring), field-level merge and flows.
        .target(
            name: "ParleyLinkCore",
            dependencies: ["ParleyCore", "ParleyJSON", "ParleyEnvelope", "ParleyCanonical"],
            path: "Shared/ParleyLinkCore"),
        .testTarget(
            name: "ParleyLinkCoreTests",
            dependencies: [
                "ParleyLinkCore", "ParleyCanonical", "ParleyMapping", "ParleyJSON", "ParleyEnvelope",
                .product(name: "PropertyBased", package: "swift-property-based")
            ],
            path: "Tests/ParleyLinkCoreTests"),
        // The link service: its store (PostgreSQL), consumers, outbox relay and maintenance
        // around ParleyLinkCore's rules.
        .target(
            name: "ParleyLink",
            dependencies: [
                "ParleyLinkCore", "ParleyCanonical", "ParleyCore", "ParleyPostgres", "ParleyMessaging", "ParleyEnvelope", "ParleyJSON",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "CoreMetrics", package: "swift-metrics")
            ],
            path: "Shared/ParleyLink"),

        // What every adapter shares: change capture with durable positions and a poll lease,
        // command writing with retries, the HTTP client, the custom contracts' connector.
        .target(
            name: "ParleyAdapter",
            dependencies: [
                "ParleyEnvelope", "ParleyJSON",
                "ParleyMapping", "ParleyPostgres", "ParleyMessaging", "ParleyCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                "ParleyObservability"
            ],
            path: "Shared/ParleyAdapter"),

        .executableTarget(
            name: "customerp-adapter",
            dependencies: [
                "ParleyAdapter", "ParleyMessaging",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                "ParleyObservability"
            ],
            path: "Services/customerp-adapter"),
        .executableTarget(
            name: "customwebshop-adapter",
            dependencies: [
                "ParleyAdapter", "ParleyCore", "ParleyMapping", "ParleyMessaging",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                "ParleyObservability"
            ],
            path: "Services/customwebshop-adapter"),
        .executableTarget(
            name: "powerofficego-adapter",
            dependencies: [
                "ParleyAdapter", "ParleyMessaging",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                "ParleyObservability"
            ],
            path: "Services/powerofficego-adapter"),
        .executableTarget(
            name: "mapping-service",
            dependencies: [
                "ParleyMapping", "ParleyMappingService", "ParleyAMQP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                "ParleyObservability"
            ],
            path: "Services/mapping-service"),
        .executableTarget(
            name: "link-service",
            dependencies: [
                "ParleyLink", "ParleyLinkCore", "ParleyMapping", "ParleyAMQP", "ParleyPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                "ParleyObservability"
            ],
            path: "Services/link-service"),
        // The operator CLI: dataflow documents and the link service's state.
        .executableTarget(
            name: "parley",
            dependencies: [
                "ParleyMapping", "ParleyLink", "ParleyPostgres", "ParleyEnvelope", "ParleyJSON",
                .product(name: "ArgumentParser", package: "swift-argument-parser")
            ],
            path: "Services/parley"),

        // A tiny consumer process the graceful-shutdown test starts and sends SIGTERM to.
        .executableTarget(
            name: "AMQPShutdownFixture",
            dependencies: ["ParleyMessaging", "ParleyAMQP"],
            path: "Tests/Fixtures/AMQPShutdownFixture"),

        .testTarget(
            name: "ParleyAMQPTests",
            dependencies: ["ParleyEnvelope", "ParleyJSON", "ParleyAMQP", "ParleyCore", "ParleyMessaging", "ParleyTestSupport"],
            path: "Tests/ParleyAMQPTests"),
        .testTarget(
            name: "ParleyPostgresTests", dependencies: ["ParleyPostgres", "ParleyCore", "ParleyTestSupport"], path: "Tests/ParleyPostgresTests"),
        .testTarget(
            name: "ParleyMessagingTests", dependencies: ["ParleyMessaging", "ParleyJSON", "ParleyEnvelope"], path: "Tests/ParleyMessagingTests"),
        .testTarget(
            name: "ParleyMappingTests",
            dependencies: [
                "ParleyEnvelope", "ParleyJSON", "ParleyMapping", "ParleyTestSupport", .product(name: "PropertyBased", package: "swift-property-based")
            ], path: "Tests/ParleyMappingTests", exclude: ["Golden"]),
        // What the integration tests share: scratch vhosts and databases, service binaries, deadlines.
        .target(name: "ParleyTestSupport", dependencies: ["ParleyAMQP", "ParleyCore", "ParleyPostgres"], path: "Tests/Support"),
        .testTarget(
            name: "ParleyLinkTests",
            dependencies: [
                "ParleyEnvelope", "ParleyJSON", "ParleyLink", "ParleyLinkCore", "ParleyPostgres", "ParleyMapping", "ParleyTestSupport",
                .product(name: "PropertyBased", package: "swift-property-based")
            ], path: "Tests/ParleyLinkTests"),
        // Every service as a real process with the simulators, RabbitMQ and PostgreSQL (the whole product).
        .testTarget(
            name: "ParleyEndToEndTests",
            dependencies: [
                "ParleyEnvelope", "ParleyJSON", "ParleyMapping", "ParleyCanonical", "ParleyLink", "ParleyMessaging", "ParleyPostgres",
                "ParleyTestSupport"
            ], path: "Tests/ParleyEndToEndTests"),
        .testTarget(
            name: "ParleyAdapterTests",
            dependencies: ["ParleyEnvelope", "ParleyJSON", "ParleyAdapter", "ParleyCore", "ParleyCanonical", "ParleyMessaging", "ParleyTestSupport"],
            path: "Tests/ParleyAdapterTests"),
        .testTarget(name: "ParleyCoreTests", dependencies: ["ParleyCore"], path: "Tests/ParleyCoreTests"),
        // PowerOffice Go v2 simulator: the store, JSON Patch, tokens, rate limit and faults as pure
        // types, a thin Hummingbird layer over them, and the executable that serves it.
        .target(
            name: "PowerOfficeSimulator",
            dependencies: [
                "ParleySimulator",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log")
            ],
            path: "Shared/PowerOfficeSimulator"),
        .executableTarget(
            name: "powerofficego-simulator",
            dependencies: [
                "PowerOfficeSimulator",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log")
            ],
            path: "Services/powerofficego-simulator"),
        .testTarget(
            name: "PowerOfficeSimulatorTests",
            dependencies: [
                "PowerOfficeSimulator", "ParleySimulator", "ParleyCanonical",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client")
            ],
            path: "Tests/PowerOfficeSimulatorTests"),
        .testTarget(
            name: "ParleyCanonicalTests",
            dependencies: ["ParleyCanonical", "ParleyJSON", "ParleyEnvelope", .product(name: "PropertyBased", package: "swift-property-based")],
            path: "Tests/ParleyCanonicalTests"),

        // The simulators of the ERP and the webshop: what they share (record store, paging,
        // idempotency, problems, auth, faults, webhooks, Norwegian seed data), and one
        // executable per system serving its contract.
        .target(
            name: "ParleySimulator",
            dependencies: [
                "ParleyCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log")
            ],
            path: "Shared/ParleySimulator"),
        .executableTarget(
            name: "customerp-simulator",
            dependencies: [
                "ParleySimulator", .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser")
            ],
            path: "Services/customerp-simulator"),
        .executableTarget(
            name: "customwebshop-simulator",
            dependencies: [
                "ParleySimulator", .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser")
            ],
            path: "Services/customwebshop-simulator"),
        .testTarget(
            name: "ParleySimulatorTests",
            dependencies: [
                "ParleySimulator", "ParleyCore", "ParleyCanonical", "customerp-simulator", "customwebshop-simulator",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client")
            ],
            path: "Tests/ParleySimulatorTests"),

        // Deployment: what each executable reads from its environment and the broker permissions
        // each service needs, from the constants the code uses; the test checks docker-compose.yml
        // and infra/ against them.
        .target(
            name: "ParleyDeployment",
            dependencies: [
                "ParleyEnvelope", "ParleyAMQP", "ParleyPostgres", "ParleyMessaging", "ParleyMapping", "ParleyAdapter", "ParleySimulator",
                "ParleyObservability"
            ],
            path: "Shared/ParleyDeployment"),
        .testTarget(
            name: "ParleyDeploymentTests",
            dependencies: [
                "ParleyEnvelope", "ParleyDeployment", "ParleyAMQP", "ParleyCore", "ParleyMessaging", "ParleyTestSupport",
                .product(name: "Yams", package: "Yams")
            ],
            path: "Tests/ParleyDeploymentTests")
    ],
    swiftLanguageModes: [.v6]
)

// The operator's toolkit behind `parley` (docs/cli.md): RabbitMQ's management API, dead-letter
// listing and replay, the status report and its rendering, in a library the tests import.
package.targets.append(
    .target(
        name: "ParleyOperations",
        dependencies: [
            "ParleyEnvelope", "ParleyJSON",
            "ParleyAMQP", "ParleyCore", "ParleyMessaging", "ParleyCanonical", "ParleyLink",
            .product(name: "AsyncHTTPClient", package: "async-http-client")
        ],
        path: "Shared/ParleyOperations"))
package.targets.append(
    .testTarget(
        name: "ParleyOperationsTests",
        dependencies: [
            "ParleyEnvelope", "ParleyJSON", "ParleyOperations", "ParleyAMQP", "ParleyCore", "ParleyMessaging", "ParleyCanonical", "ParleyLink",
            "ParleyPostgres", "ParleyTestSupport"
        ],
        path: "Tests/ParleyOperationsTests"))
// Added here rather than by editing the `parley` target's line above.
package.targets.first { $0.name == "parley" }!.dependencies += ["ParleyOperations", "ParleyAdapter", "ParleyAMQP"]
