"""Names that are places wherever they stand: the world's countries and the solar system's planets.

General knowledge, not taken from any evaluation set. The 135M model calls a country an organization when it
acts ("The IMF lent Argentina $44 billion"), and the Moon one when something lands on it; news-style NER (and
our gold sets) label both locations. Names that are as often something else are left out: Jordan, Georgia and
Chad (people's names), Turkey (a bird), Mercury and the Sun (an element, a newspaper), Mars (a company).
"""

from __future__ import annotations

from ner.grounding import normal

_COUNTRIES = """
Afghanistan, Albania, Algeria, Andorra, Angola, Antigua and Barbuda, Argentina, Armenia, Australia, Austria,
Azerbaijan, Bahamas, Bahrain, Bangladesh, Barbados, Belarus, Belgium, Belize, Benin, Bhutan, Bolivia,
Bosnia and Herzegovina, Botswana, Brazil, Brunei, Bulgaria, Burkina Faso, Burundi, Cambodia, Cameroon, Canada,
Cape Verde, Central African Republic, Chile, China, Colombia, Comoros, Congo, Costa Rica, Croatia, Cuba, Cyprus,
Czech Republic, Czechia, Denmark, Djibouti, Dominica, Dominican Republic, East Timor, Ecuador, Egypt,
El Salvador, England, Equatorial Guinea, Eritrea, Estonia, Eswatini, Ethiopia, Fiji, Finland, France, Gabon,
Gambia, Germany, Ghana, Greece, Greenland, Grenada, Guatemala, Guinea, Guinea-Bissau, Guyana, Haiti, Honduras,
Hungary, Iceland, India, Indonesia, Iran, Iraq, Ireland, Israel, Italy, Ivory Coast, Jamaica, Japan,
Kazakhstan, Kenya, Kiribati, Kosovo, Kuwait, Kyrgyzstan, Laos, Latvia, Lebanon, Lesotho, Liberia, Libya,
Liechtenstein, Lithuania, Luxembourg, Madagascar, Malawi, Malaysia, Maldives, Mali, Malta, Marshall Islands,
Mauritania, Mauritius, Mexico, Micronesia, Moldova, Monaco, Mongolia, Montenegro, Morocco, Mozambique, Myanmar,
Namibia, Nauru, Nepal, Netherlands, New Zealand, Nicaragua, Niger, Nigeria, North Korea, North Macedonia,
Northern Ireland, Norway, Oman, Pakistan, Palau, Palestine, Panama, Papua New Guinea, Paraguay, Peru,
Philippines, Poland, Portugal, Qatar, Romania, Russia, Rwanda, Saint Lucia, Samoa, San Marino, Saudi Arabia,
Scotland, Senegal, Serbia, Seychelles, Sierra Leone, Singapore, Slovakia, Slovenia, Solomon Islands, Somalia,
South Africa, South Korea, South Sudan, Spain, Sri Lanka, Sudan, Suriname, Sweden, Switzerland, Syria, Taiwan,
Tajikistan, Tanzania, Thailand, Timor-Leste, Togo, Tonga, Trinidad and Tobago, Tunisia, Turkmenistan, Tuvalu,
Uganda, Ukraine, United Arab Emirates, United Kingdom, United States, United States of America, Uruguay,
Uzbekistan, Vanuatu, Vatican City, Venezuela, Vietnam, Wales, Yemen, Zambia, Zimbabwe
"""
_PLANETS = "Earth, Moon, Venus, Jupiter, Saturn, Uranus, Neptune, Pluto"

PLACES = frozenset(normal(name) for name in f"{_COUNTRIES}, {_PLANETS}".split(",") if name.strip())


def is_known_place(name: str) -> bool:
    """Whether `name` (any case, any spacing) is a country or a planet."""
    return normal(name) in PLACES
