"""Fill a PDF form from a JSON file of field values."""
import json
import sys

from pypdf import PdfReader, PdfWriter


def fields(path):
    for name in (PdfReader(path).get_fields() or {}):
        print(name)


def fill(path, values_path, out):
    reader = PdfReader(path)
    writer = PdfWriter()
    writer.append(reader)
    with open(values_path, encoding="utf-8") as handle:
        values = json.load(handle)
    for page in writer.pages:
        writer.update_page_form_field_values(page, values)
    with open(out, "wb") as handle:
        writer.write(handle)


if __name__ == "__main__":
    if sys.argv[1] == "fields":
        fields(sys.argv[2])
    else:
        fill(sys.argv[2], sys.argv[3], sys.argv[5])
