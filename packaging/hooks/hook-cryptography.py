# The binary carries packaging/stubs/cryptography, not the real package: nothing to collect
# (the contributed hook for the real one fails on the stub).
