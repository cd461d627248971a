from cryptography import stub_class

HKDF = stub_class("HKDF")
