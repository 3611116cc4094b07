"""The ground floor every layer shares: canonical encoding, signing, committee arithmetic.

Imports nothing else of the project (a test holds this): the pure cores in
``ordering`` and ``mev`` build on it and on nothing above it.
"""
