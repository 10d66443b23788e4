"""The per-language report's rough language guess."""

from training.language import guess


def test_scripts_and_common_words():
    assert guess("本公司长期为企业代开各类发票，欢迎来电咨询") == "zh"
    assert guess("Please find the report you asked for and your invoice for this month") == "en"
    assert guess("Prezado cliente, você precisa atualizar seu cadastro para não perder") == "pt"
    assert guess("Sehr geehrte Kundin, die Rechnung ist nicht bezahlt und wir bitten Sie") == "de"
    assert guess("12345 !!!") == "unknown"
    assert guess("ok") == "unknown"
