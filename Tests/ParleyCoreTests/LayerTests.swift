import Foundation
import Testing

/// The layers point one way: the pure libraries build without the broker or database clients.
/// Read from Package.swift itself, so a dependency added there is caught here.
@Suite struct LayerTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    /// Libraries with no I/O: JSON, the envelope, the canonical model, the mapping engine and
    /// what they stand on.
    static let pure = ["ParleyCore", "ParleyJSON", "ParleyEnvelope", "ParleyCanonical", "ParleyMapping", "ParleyLinkCore"]
    /// The C clients and the libraries that wrap them.
    static let io: Set<String> = ["CRabbitMQ", "CLibPQ", "ParleyAMQP", "ParleyPostgres", "ParleyMessaging"]

    /// The link service's libraries keep their functions short (issue 15: the rules were one
    /// 124-line function re-entering itself; now each step is its own).
    static let shortFunctions = ["Shared/ParleyLink", "Shared/ParleyLinkCore"]

    @Test("No function or initialiser in the link service's libraries is longer than 60 lines")
    func shortFunctions() throws {
        for folder in Self.shortFunctions {
            let files = try FileManager.default.contentsOfDirectory(atPath: Self.root.appendingPathComponent(folder).path)
            #expect(!files.isEmpty)
            for file in files where file.hasSuffix(".swift") {
                let text = try String(contentsOf: Self.root.appendingPathComponent(folder).appendingPathComponent(file), encoding: .utf8)
                for (line, length) in Self.functionLengths(in: text) {
                    #expect(length <= 60, "\(folder)/\(file):\(line) is \(length) lines")
                }
            }
        }
        // The reading itself: a function's lines are counted from its declaration to its closing brace.
        let sample = "struct A {\n    func f() {\n        g()\n    }\n    func h() -> Int\n}\n"
        #expect(Self.functionLengths(in: sample).map(\.length) == [3])
    }

    /// Each function or initialiser with a body: its first line (1-based) and how many lines it
    /// spans, declaration to the closing brace at the declaration's indentation.
    static func functionLengths(in text: String) -> [(line: Int, length: Int)] {
        let lines = text.components(separatedBy: "\n")
        var result: [(Int, Int)] = []
        for (index, line) in lines.enumerated() {
            let trimmed = line.drop { $0 == " " }
            let words = trimmed.split(separator: " ").map(String.init)
            let modifiers: Set<String> = [
                "public", "private", "fileprivate", "internal", "static", "mutating", "override", "nonisolated",
                "@discardableResult", "@inlinable", "final", "convenience", "required"
            ]
            guard let keyword = words.first(where: { !modifiers.contains($0) }),
                keyword.hasPrefix("func") || keyword.hasPrefix("init(") || keyword.hasPrefix("init?(") || keyword == "init"
            else { continue }
            let indent = String(line.prefix(line.count - trimmed.count))
            // A body opens on the declaration's lines (a requirement in a protocol has none).
            var opens = false
            for next in lines[index...] {
                if next.hasSuffix("{") { opens = true; break }
                if next.trimmingCharacters(in: .whitespaces).isEmpty || next.hasSuffix("}") { break }
            }
            guard opens, let end = lines[index...].firstIndex(where: { $0 == indent + "}" }) else { continue }
            result.append((index + 1, end - index + 1))
        }
        return result
    }

    @Test("No pure library depends, directly or through another, on librabbitmq or libpq, nor imports a library that does")
    func pureLayers() throws {
        let manifest = try String(contentsOf: Self.root.appendingPathComponent("Package.swift"), encoding: .utf8)
        let targets = Self.targets(in: manifest)
        // The reading itself: what is known to depend on the broker client is seen to.
        #expect(targets["ParleyMessaging"]?.dependencies.contains("ParleyAMQP") == true)
        #expect(targets["ParleyAMQP"]?.dependencies.contains("CRabbitMQ") == true)
        #expect(targets["ParleyOperations"]?.dependencies.contains("ParleyLink") == true, "targets appended after the package")
        for name in Self.pure {
            let target = try #require(targets[name], "\(name) is a target of Package.swift")
            var reached: Set<String> = [], queue = target.dependencies
            while let next = queue.popLast() {
                guard reached.insert(next).inserted else { continue }
                queue += targets[next]?.dependencies ?? []
            }
            #expect(reached.isDisjoint(with: Self.io), "\(name) reaches \(reached.intersection(Self.io).sorted())")
            let sources = FileManager.default.enumerator(at: Self.root.appendingPathComponent(target.path), includingPropertiesForKeys: nil)
            for case let file as URL in sources?.allObjects ?? [] where file.pathExtension == "swift" {
                for line in try String(contentsOf: file, encoding: .utf8).split(separator: "\n") {
                    let words = line.split(separator: " ")
                    guard let at = words.firstIndex(of: "import"), at + 1 < words.count else { continue }
                    #expect(!Self.io.contains(String(words[at + 1])), "\(file.lastPathComponent): \(line)")
                }
            }
        }
    }

    /// Each target's name, path and the targets it names as dependencies (products of packages
    /// are left out): every `.target(`, `.testTarget(`, `.executableTarget(` and
    /// `.systemLibrary(` call, its parentheses balanced.
    static func targets(in manifest: String) -> [String: (path: String, dependencies: [String])] {
        let text = Array(manifest.unicodeScalars)
        var out: [String: (path: String, dependencies: [String])] = [:]
        let calls = [".target(", ".testTarget(", ".executableTarget(", ".systemLibrary("].map { Array($0.unicodeScalars) }
        var i = 0
        while i < text.count {
            guard let call = calls.first(where: { i + $0.count <= text.count && Array(text[i..<i + $0.count]) == $0 }) else { i += 1; continue }
            var depth = 0, j = i + call.count - 1
            repeat {
                if text[j] == "(" { depth += 1 } else if text[j] == ")" { depth -= 1 }
                j += 1
            } while depth > 0 && j < text.count
            let body = String(String.UnicodeScalarView(text[i..<j]))
            if let name = quoted(after: "name:", in: body) {
                let path = quoted(after: "path:", in: body) ?? "Sources/\(name)"
                var dependencies: [String] = []
                if let open = body.range(of: "dependencies:"), let start = body[open.upperBound...].firstIndex(of: "[") {
                    var level = 0, end = start
                    for index in body[start...].indices {
                        if body[index] == "[" { level += 1 } else if body[index] == "]" { level -= 1 }
                        if level == 0 { end = index; break }
                    }
                    // Bare string literals are targets; `.product(name: …, package: …)` is not.
                    var list = String(body[body.index(after: start)..<end])
                    while let product = list.range(of: #"\.product\([^)]*\)"#, options: .regularExpression) { list.removeSubrange(product) }
                    dependencies = list.split(separator: "\"", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map {
                        String($0.element)
                    }
                }
                out[name] = (path, dependencies)
            }
            i = j
        }
        return out
    }

    static func quoted(after label: String, in text: String) -> String? {
        guard let at = text.range(of: label) else { return nil }
        let rest = text[at.upperBound...]
        guard let open = rest.firstIndex(of: "\""), let close = rest[rest.index(after: open)...].firstIndex(of: "\"") else { return nil }
        return String(rest[rest.index(after: open)..<close])
    }
}
