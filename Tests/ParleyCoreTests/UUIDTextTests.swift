import Foundation
import Testing
import ParleyCore

@Suite("UUID text and random ids")
struct UUIDTextTests {
    @Test("lowercasedString is Foundation's uuidString in lower case")
    func formatting() {
        for _ in 0..<1000 {
            let id = UUID()
            #expect(id.lowercasedString == id.uuidString.lowercased())
        }
        #expect(UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)).lowercasedString == "00000000-0000-0000-0000-000000000000")
    }

    @Test("init(text:) reads what Foundation reads and refuses what it refuses")
    func parsing() {
        for _ in 0..<1000 {
            let id = UUID()
            #expect(UUID(text: id.uuidString) == id)
            #expect(UUID(text: id.lowercasedString) == id)
            #expect(UUID(text: id.lowercasedString[...]) == id)
        }
        for bad in [
            "", "0", "123e4567-e89b-12d3-a456-42661417400", "123e4567-e89b-12d3-a456-4266141740000",
            "123e4567e89b-12d3-a456-426614174000-", "123e4567-e89b-12d3-a456_426614174000", "g23e4567-e89b-12d3-a456-426614174000",
            "123e4567-e89b-12d3-a456-42661417400é"
        ] {
            #expect(UUID(text: bad) == nil, "\(bad)")
            #expect(UUID(uuidString: bad) == nil, "Foundation agrees on \(bad)")
        }
    }

    @Test("random() gives version 4, RFC 4122 variant, distinct ids")
    func random() {
        var seen = Set<UUID>()
        for _ in 0..<10_000 {
            let id = UUID.random()
            let text = id.lowercasedString
            #expect(text[text.index(text.startIndex, offsetBy: 14)] == "4")
            #expect("89ab".contains(text[text.index(text.startIndex, offsetBy: 19)]))
            seen.insert(id)
        }
        #expect(seen.count == 10_000)
    }
}
