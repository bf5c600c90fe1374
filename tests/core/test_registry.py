import pytest

from flanlab.core.errors import UnknownNameError, UserError
from flanlab.core.registry import Registry


def test_register_get_names():
    r: Registry[int] = Registry("widget")
    r.register("alpha", 1)
    r.register("beta", 2)
    assert r.get("alpha") == 1
    assert r.names() == ["alpha", "beta"]
    assert "beta" in r and len(r) == 2


def test_duplicate_is_an_error():
    r: Registry[int] = Registry("widget")
    r.register("alpha", 1)
    with pytest.raises(KeyError, match="already registered"):
        r.register("alpha", 2)
    r.register("alpha", 3, replace=True)
    assert r.get("alpha") == 3


def test_miss_suggests_close_names():
    r: Registry[int] = Registry("benchmark")
    for name in ["mmlu", "bbh", "gsm8k", "mgsm", "tydiqa"]:
        r.register(name, 0)
    with pytest.raises(UnknownNameError) as e:
        r.get("gsm8")
    assert "unknown benchmark 'gsm8'" in str(e.value)
    assert "'gsm8k'" in str(e.value)
    assert isinstance(e.value, KeyError) and isinstance(e.value, UserError)


def test_miss_without_close_name_lists_known():
    r: Registry[int] = Registry("benchmark")
    r.register("mmlu", 0)
    with pytest.raises(UnknownNameError, match="known: mmlu"):
        r.get("zzzzzz")


def test_decorator():
    r: Registry[type] = Registry("thing")

    @r.decorator("thing-a")
    class A:
        pass

    assert r.get("thing-a") is A
