from cryptography import stub_class

AESGCM = stub_class("AESGCM")
