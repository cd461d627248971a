from cryptography import stub_class

SHA256 = stub_class("SHA256")
