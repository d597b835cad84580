"""Task detection on real-looking prompts (and their near misses), and turn counting."""

from __future__ import annotations

from typing import Any

import pytest

from claude_proxy.policies import detect_task, user_turns

INVOICE = """INVOICE #2024-0113
Acme Tooling GmbH, Hauptstr. 5, Berlin
Bill to: Northwind Traders
3 x Torque wrench 18.50 EUR
Total due: 55.50 EUR by 2024-02-15"""

TOOLS = [
    {
        "name": "record_invoice",
        "description": "Record an invoice's fields.",
        "input_schema": {"type": "object", "properties": {"total": {"type": "number"}}},
    }
]


def ask(text: str, **fields: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 512,
        "messages": [{"role": "user", "content": text}],
        **fields,
    }


@pytest.mark.parametrize(
    "body",
    [
        ask(f"Extract the vendor, the total and the due date from this invoice:\n\n{INVOICE}"),
        ask(f"{INVOICE}\n\nReturn the line items as a JSON array with name, qty and price."),
        ask("Respond only with valid JSON.\n\nWho won the 1998 World Cup, and where?"),
        ask(
            "Classify this support ticket as billing, bug or feature request: "
            "'I was charged twice for my March subscription.'"
        ),
        ask("Categorise these expenses by department: taxi 23.40, AWS 1,204.11, lunch 18.00"),
        ask(
            "List the named entities (people, places, organisations) in: "
            "'Angela Merkel met Tim Cook in Berlin.'"
        ),
        ask(INVOICE, system="You turn documents into structured data for our ERP."),
        ask(INVOICE, tools=TOOLS, tool_choice={"type": "tool", "name": "record_invoice"}),
        ask(INVOICE, tools=TOOLS, tool_choice={"type": "any"}),
        ask(
            INVOICE,
            output_config={
                "format": {"type": "json_schema", "schema": {"type": "object"}},
            },
        ),
        {
            **ask(f"Vendor and total of:\n{INVOICE}"),
            "messages": [
                {"role": "user", "content": f"Vendor and total of:\n{INVOICE}"},
                {"role": "assistant", "content": '{"vendor": "'},
            ],
        },
        {
            **ask(INVOICE),
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": INVOICE}]},
                {"role": "assistant", "content": [{"type": "text", "text": "```json"}]},
            ],
        },
        # The instruction at the end of a long prompt is still read.
        ask(("Lorem ipsum dolor sit amet. " * 600) + "\n\nExtract every date mentioned above."),
    ],
)
def test_extraction(body: dict[str, Any]) -> None:
    assert detect_task(body) == "extraction"


@pytest.mark.parametrize(
    "text",
    [
        "Write a short story about a lighthouse keeper who finds a message in a bottle.",
        "Compose a poem about autumn in Kyoto, in the style of Basho.",
        "Can you draft a cover letter for a junior data analyst position at a bank?",
        "Tell me a bedtime story about a dragon who is afraid of the dark.",
        "Let's brainstorm names for a bakery that also sells coffee.",
        "Help me write a blog post on why remote teams need written rituals.",
        "Write a toast for my sister's wedding, funny but not embarrassing.",
        "Write an email to my landlord about the broken heating.",
        "Write a script for a two-minute film about a lost umbrella.",
        "Write a poem about Python, the snake.",
        "Write a story in which no one ever mentions JSON.",
    ],
)
def test_writing(text: str) -> None:
    assert detect_task(ask(text)) == "writing"


@pytest.mark.parametrize(
    "text",
    [
        "What is the capital of Australia?",
        "Why did JSON replace XML for most web APIs?",  # about JSON, not asking for it
        "Write a Python function that reverses a linked list.",
        "Summarize the main arguments of this article: " + "Cities grow. " * 20,
        "How do I parse command-line flags in Go?",
        "Is Claude Sonnet better than Claude Haiku for chat?",
        "My story is that I moved here in 2019; what visa do I need now?",
        # Code, whose nouns (script, email) are also prose's.
        "Write a Python script that renames every photo by the date it was taken.",
        "Create a bash script to back up my home directory every night.",
        "Generate an email validation regex.",
        # JSON refused is no extraction.
        "Do not return JSON; explain in two sentences why the sky is blue.",
        "Please don't output JSON. What is a monad?",
    ],
)
def test_other(text: str) -> None:
    assert detect_task(ask(text)) == "other"


def test_tools_the_model_may_choose_are_not_extraction() -> None:
    assert detect_task(ask("What's the weather in Paris?", tools=TOOLS)) == "other"
    assert detect_task(ask("Hi", tools=TOOLS, tool_choice={"type": "auto"})) == "other"


def test_a_prose_prefill_is_not_extraction() -> None:
    body = ask("Describe Paris.")
    body["messages"].append({"role": "assistant", "content": "Paris is"})
    assert detect_task(body) == "other"


def test_the_instruction_of_a_tool_loop_is_its_turn_s_user_message() -> None:
    messages = [
        {"role": "user", "content": "Write a poem about the weather in Oslo right now."},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "weather", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "rain, 4C"}],
        },
    ]
    assert detect_task({"messages": messages}) == "writing"


def test_malformed_bodies_are_other() -> None:
    for body in ({}, {"messages": "hi"}, {"messages": [None, 3]}, {"system": 5, "messages": []}):
        assert detect_task(body) == "other"


def test_user_turns_count_turns_not_tool_results() -> None:
    tool_use = {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f"}]}
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]}
    messages = [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "two"},
        tool_use,
        result,
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "three"},
        {"role": "user", "content": "three, continued"},  # the same turn
    ]
    assert user_turns(messages) == 3
    assert user_turns(messages[:1]) == 1
    assert user_turns([]) == 0
    assert user_turns("nope") == 0
