"""The custom search attributes every saga upserts, registered when Temporal starts."""

__all__ = ["SEARCH_ATTRIBUTES"]

# name -> Temporal indexed value type, as `temporal server start-dev --search-attribute` takes it.
SEARCH_ATTRIBUTES: dict[str, str] = {
    "OrderId": "Keyword",
    "CustomerId": "Keyword",
    "SagaStatus": "Keyword",
    "SagaStep": "Keyword",
}
