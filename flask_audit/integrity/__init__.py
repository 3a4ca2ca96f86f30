"""Tamper evidence: the canonical row, Merkle trees, seals, verification and proofs."""
