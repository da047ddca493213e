import Testing
import ParleyCanonical
