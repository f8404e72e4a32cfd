"""The JSON API for support tools: serializers hold the contract, the schema is generated from them."""
