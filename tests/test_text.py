from data_pipeline.text import clean, process, stopwords


def test_seed_example_cleans_to_five_words():
    text = "Visit our website at https://example.com for more info! <b>Special Offer!!!</b>"
    assert process(text, keep_negations=True)[1] == "visit website info special offer"
    assert process(text, keep_negations=False)[1] == "visit website info special offer"


def test_cleaning_strips_html_urls_emails_and_symbols():
    assert clean("Mail ME at a.b@c.org or www.x.com/y <br />NOW!!! #1") == "mail me at or now 1"


def test_negations_kept_for_sentiment_and_dropped_otherwise():
    text = "I did not like it, it isn't good and there is no plot nor cast"
    kept = process(text, keep_negations=True)[1].split()
    assert kept.count("not") == 2 and "no" in kept and "nor" in kept
    assert not {"not", "no", "nor"} & set(process(text, keep_negations=False)[1].split())


def test_short_tokens_and_stopwords_dropped():
    assert process("an ox is at the big zoo", keep_negations=False)[1] == "big zoo"
    assert {"the", "not", "very"} <= stopwords()


def test_symbol_only_text_becomes_empty():
    assert process("!!! ### @@@ ---", keep_negations=True) == ("", "")
