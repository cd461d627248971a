"""The codegen endpoints' wire shapes (see contract.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from ..contract import Shape, doc

DEFAULT_SCORE_THRESHOLD = 0.5
DEFAULT_TOKEN_LIMIT = 30000


class ApplyEditRequest(Shape):
    code_edit: Annotated[str, doc("The edit snippet, with `// ... existing code ...` markers.", min_length=1)]
    model: Annotated[str | None, doc("The provider's model (default `auto`: the provider's apply model).")] = None


class ApplyEditResponse(Shape, omit_defaults=False):
    success: bool
    path: str
    original_content: Annotated[str, doc("The file before the edit (empty for a new file).")]
    updated_content: Annotated[str, doc("The file as written.")]
    provider: Literal["relace", "morphllm"]
    message: str


class RerankQuery(Shape):
    query: Annotated[str, doc("What the files should be relevant to.")]
    score_threshold: Annotated[float, doc("Files scoring below it are left out (0: the default).")] = (
        DEFAULT_SCORE_THRESHOLD
    )
    token_limit: Annotated[int, doc("The provider's token budget (0: the default).")] = DEFAULT_TOKEN_LIMIT
    file_pattern: Annotated[str | None, doc("A regular expression the path or the file name must match.")] = None


class RankedFile(Shape, omit_defaults=False):
    path: Annotated[str, doc("Absolute.")]
    content: str
    score: Annotated[float, doc("The provider's relevance score.")]


class RerankingResponse(Shape, omit_defaults=False):
    success: bool
    files: Annotated[list[RankedFile], doc("Best first.")]
    message: str
